import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { IScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { IStateMachine } from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";

export interface MonitoringProps {
  stateMachine: IStateMachine;
  /** Every handler, by a name that reads well in an alarm ("upload", "reconstruct-shard", …). */
  functions: ReadonlyMap<string, IFunction>;
  deadlines: IScheduleGroup;
  /** Deadline calls that failed after Lambda's retries. */
  lostDeadlines: IQueue;
  /** Subscribed to the alarm topic when given; otherwise operators subscribe themselves. */
  alarmEmail?: string;
}

const period = Duration.minutes(5);

/**
 * Tells an operator, through one SNS topic, when a round could not be aggregated, when any handler threw, and
 * when a round deadline could not be delivered — each of these leaves a round stuck until someone looks.
 */
export class Monitoring extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);

    // A customer-managed key because CloudWatch cannot publish to a topic encrypted with the aws/sns key.
    const key = new Key(this, "TopicKey", {
      description: "Encrypts Ferret alarm notifications",
      enableKeyRotation: true,
    });
    key.grant(new ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*");
    this.topic = new Topic(this, "AlarmTopic", { masterKey: key, enforceSSL: true });
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const { stateMachine } = props;
    this.alarmOn(
      "AggregationFailed",
      "A round's aggregation execution failed or timed out. A failure is recorded: the round is FAILED and the " +
        "next one opens. A timeout leaves it AGGREGATING: pausing and starting the run runs the steps again.",
      new MathExpression({
        expression: "failed + timedOut",
        usingMetrics: { failed: stateMachine.metricFailed(), timedOut: stateMachine.metricTimedOut() },
        period,
      }),
    );
    for (const [name, fn] of props.functions) {
      this.alarmOn(
        `${pascalCase(name)}Errors`,
        `The ${name} handler threw (uncaught errors or timeouts, not 4xx answers).`,
        fn.metricErrors({ period, statistic: "Sum" }),
      );
    }
    this.alarmOn(
      "DeadlineDeliveryFailed",
      "EventBridge Scheduler could not invoke the deadline handler; a round may stay open past its deadline.",
      props.deadlines.metricTargetErrors({ period, statistic: "Sum" }),
    );
    this.alarmOn(
      "DeadlineLost",
      "A round's deadline call failed after Lambda's retries (the queue's message names the run and round), so " +
        "the round stays open past its deadline. Pausing and starting the run closes it.",
      props.lostDeadlines.metricApproximateNumberOfMessagesVisible({ period, statistic: "Maximum" }),
    );
  }

  private alarmOn(id: string, description: string, metric: IMetric): void {
    const alarm = new Alarm(this, id, {
      alarmDescription: description,
      metric,
      threshold: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(this.topic));
    this.alarms.push(alarm);
  }
}

function pascalCase(name: string): string {
  return name.replace(/(^|[-_ ])(\w)/g, (_, _sep: string, c: string) => c.toUpperCase());
}

import { ArnFormat, Duration, Fn, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { ScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import {
  DefinitionBody,
  DistributedMap,
  Errors,
  Fail,
  JitterType,
  JsonPath,
  LogLevel,
  type RetryProps,
  StateMachine,
  StateMachineType,
  TaskInput,
} from "aws-cdk-lib/aws-stepfunctions";
import { LambdaInvoke } from "aws-cdk-lib/aws-stepfunctions-tasks";
import { Construct } from "constructs";
import { PERMANENT_STEP_ERRORS } from "../../functions/rounds/step-errors.ts";
import { acknowledgeTracing, acknowledgeWildcard } from "./nag.ts";

/**
 * Where round deadlines live: handlers that open a round create a one-off `at(...)` schedule in this group,
 * and EventBridge Scheduler invokes the deadline handler through this role when it fires.
 */
export class Deadlines extends Construct {
  readonly group: ScheduleGroup;
  readonly schedulerRole: Role;
  /**
   * Deadline calls that still failed after Lambda's retries, each with its run and round. Nothing else would
   * close such a round; the run's next start does (resumeRun), and an alarm says so.
   */
  readonly lost: Queue;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.group = new ScheduleGroup(this, "Group", { removalPolicy: RemovalPolicy.DESTROY });
    this.schedulerRole = new Role(this, "SchedulerRole", {
      description: "Assumed by EventBridge Scheduler to invoke the Ferret round-deadline handler",
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        // Only schedules of this account may use the role (confused-deputy guard).
        conditions: { StringEquals: { "aws:SourceAccount": Stack.of(this).account } },
      }),
    });
    this.lost = new Queue(this, "LostDeadlines", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.lost).acknowledge({
      id: "AwsSolutions-SQS3",
      reason: "This queue is itself where failed deadline calls end up; nothing consumes it to fail again.",
    });
  }

  /**
   * The schedules' target: the role may invoke exactly this function (not its versions or aliases). Scheduler
   * invokes it asynchronously, so Lambda retries a failed call twice, then sends it to `lost`.
   */
  target(deadlineHandler: IFunction): void {
    this.schedulerRole.addToPrincipalPolicy(
      new PolicyStatement({ actions: ["lambda:InvokeFunction"], resources: [deadlineHandler.functionArn] }),
    );
    deadlineHandler.configureAsyncInvoke({ retryAttempts: 2, onFailure: new SqsDestination(this.lost) });
  }

  /** Lets a handler create deadline schedules in this group that run as the scheduler role. */
  grantScheduling(grantee: Role): void {
    const schedules = Stack.of(this).formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${this.group.scheduleGroupName}/*`,
    });
    grantee.addToPrincipalPolicy(
      new PolicyStatement({ actions: ["scheduler:CreateSchedule"], resources: [schedules] }),
    );
    acknowledgeWildcard(
      grantee,
      schedules,
      "Deadline schedules are named per run and round at run time; the grant is confined to this group.",
    );
    grantee.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ["iam:PassRole"],
        resources: [this.schedulerRole.roleArn],
        conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
      }),
    );
  }
}

export interface AggregationHandlers {
  aggregate: IFunction;
  reconstructShard: IFunction;
  commit: IFunction;
  fail: IFunction;
}

export interface AggregationProps {
  /** A fixed name, so handlers can be given its ARN before it exists (see Aggregation.arnFor). */
  stateMachineName: string;
  handlers: AggregationHandlers;
  /** Shard tasks running at once: bounds the S3 and Lambda load one round puts on the account. */
  maxConcurrency: number;
}

// Every step is safe to repeat (immutable inputs, deterministic outputs, conditional writes), so a transient
// failure — Lambda throttling, an S3 503, a timeout — is retried with backoff before the round is failed.
const retry: RetryProps = {
  errors: [Errors.ALL],
  maxAttempts: 3,
  interval: Duration.seconds(5),
  backoffRate: 2,
  jitterStrategy: JitterType.FULL,
};

/**
 * DESIGN.md "One round", steps 4–5: aggregate the uploads and write the update-log entry, rebuild every
 * checkpoint shard in a Distributed Map (one child execution per shard), then commit the manifest and the round.
 * Any step that still fails after its retries hands the error to the fail handler, which records the round FAILED.
 */
export class Aggregation extends Construct {
  readonly stateMachine: StateMachine;

  static arnFor(scope: Construct, stateMachineName: string): string {
    return Stack.of(scope).formatArn({
      service: "states",
      resource: "stateMachine",
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  }

  /** Every execution of the state machine named `stateMachineName`. */
  static executionsArnFor(scope: Construct, stateMachineName: string): string {
    return Stack.of(scope).formatArn({
      service: "states",
      resource: "execution",
      resourceName: `${stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  }

  constructor(scope: Construct, id: string, props: AggregationProps) {
    super(scope, id);
    const { handlers } = props;

    const recordFailure = new LambdaInvoke(this, "RecordFailure", {
      lambdaFunction: handlers.fail,
      payload: TaskInput.fromObject({
        runId: JsonPath.stringAt("$$.Execution.Input.runId"),
        round: JsonPath.numberAt("$$.Execution.Input.round"),
        error: JsonPath.objectAt("$.error"),
      }),
      resultPath: JsonPath.DISCARD,
    })
      .addRetry(retry)
      .next(new Fail(this, "RoundFailed", { errorPath: "$.error.Error", causePath: "$.error.Cause" }));
    const toFailure = { errors: [Errors.ALL], resultPath: "$.error" };

    // Each step passes its whole input to its handler and continues with what the handler returned.
    const step = (id: string, lambdaFunction: IFunction) =>
      new LambdaInvoke(this, id, {
        lambdaFunction,
        payload: TaskInput.fromJsonPathAt("$"),
        outputPath: "$.Payload",
      })
        .addRetry({ errors: PERMANENT_STEP_ERRORS, maxAttempts: 0 })
        .addRetry(retry);

    const aggregate = step("Aggregate", handlers.aggregate).addCatch(recordFailure, toFailure);

    // The aggregate step returns {runId, round, shards: [{runId, round, shard}, …]}: each item is a complete shard
    // task. The Map replaces `shards` with the shard results, in order, which is the commit step's input.
    const shards = new DistributedMap(this, "ReconstructShards", {
      itemsPath: "$.shards",
      maxConcurrency: props.maxConcurrency,
      // One bad shard means no consistent checkpoint: fail the map and let the round be recorded FAILED.
      toleratedFailurePercentage: 0,
      // Standard child executions: a shard task may run up to Lambda's 15 minutes (Express stops at 5).
      mapExecutionType: StateMachineType.STANDARD,
      resultPath: "$.shards",
    })
      .itemProcessor(step("ReconstructShard", handlers.reconstructShard))
      .addCatch(recordFailure, toFailure);

    const commit = step("Commit", handlers.commit).addCatch(recordFailure, toFailure);

    const logs = new LogGroup(this, "Logs", {
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new StateMachine(this, "StateMachine", {
      stateMachineName: props.stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(aggregate.next(shards).next(commit)),
      timeout: Duration.hours(6),
      tracingEnabled: true,
      // Events only, not execution data: a shard list can be hundreds of KB, logged again at every state.
      logs: { destination: logs, level: LogLevel.ALL, includeExecutionData: false },
    });
    acknowledgeTracing(this.stateMachine.role);
    this.acknowledgeGeneratedWildcards(Object.values(handlers));
  }

  /** The wildcards Step Functions' own grants carry, each acknowledged with why it is as narrow as it can be. */
  private acknowledgeGeneratedWildcards(steps: IFunction[]): void {
    for (const fn of steps) {
      acknowledgeWildcard(
        this.stateMachine,
        `${fn.functionArn}:*`,
        "LambdaInvoke may also call the step's versions and aliases; the function itself is named.",
      );
    }
    // A Distributed Map starts and stops one child execution per shard, named by Step Functions at run time.
    const executions = Stack.of(this).formatArn({
      service: "states",
      resource: "execution",
      resourceName: Fn.select(6, Fn.split(":", this.stateMachine.stateMachineArn)),
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const reason = "Distributed Map child executions are named at run time; only this state machine's.";
    acknowledgeWildcard(this.stateMachine, `${executions}:*`, reason);
    acknowledgeWildcard(this.stateMachine, `${executions}/*:*`, reason);
  }
}

// Template assertions on how a round is closed and aggregated in AWS, and on who hears when that fails.
import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ROUTES, STEP_HANDLERS } from "../../functions/routes.ts";
import {
  environmentOf,
  functionId as findFunctionId,
  flatten,
  functionOf,
  only,
  statementsOf,
  synthesize,
} from "./synth.ts";

interface State {
  Type: string;
  Next?: string;
  End?: boolean;
  Resource?: string;
  Parameters?: { FunctionName?: string };
  Retry?: { ErrorEquals: string[]; MaxAttempts: number }[];
  Catch?: { ErrorEquals: string[]; Next: string; ResultPath: string }[];
  ItemsPath?: string;
  ResultPath?: string | null;
  MaxConcurrency?: number;
  ToleratedFailurePercentage?: number;
  ToleratedFailureCount?: number;
  ItemProcessor?: {
    ProcessorConfig: { Mode: string; ExecutionType: string };
    StartAt: string;
    States: Record<string, State>;
  };
}

let template: Template;
let states: Record<string, State>;
let definition: { StartAt: string; States: Record<string, State> };

beforeAll(() => {
  template = synthesize().template;
  const [, machine] = only(template, "AWS::StepFunctions::StateMachine");
  definition = JSON.parse(flatten(machine.Properties.DefinitionString));
  states = definition.States;
});

const functionId = (file: string) => findFunctionId(template, file);
const invokes = (state: State | undefined) => state?.Parameters?.FunctionName;
const retriesEverything = (state: State | undefined) =>
  state?.Retry?.some((r) => r.ErrorEquals.includes("States.ALL") && r.MaxAttempts >= 2);

describe("aggregation state machine", () => {
  it("runs aggregate, then a Distributed Map of shard tasks over $.shards, then commit", () => {
    expect(definition.StartAt).toBe("Aggregate");
    expect(invokes(states.Aggregate)).toBe(`<${functionId(STEP_HANDLERS.aggregate)}.Arn>`);
    expect(states.Aggregate?.Next).toBe("ReconstructShards");

    const map = states.ReconstructShards;
    expect(map?.Type).toBe("Map");
    expect(map?.ItemProcessor?.ProcessorConfig).toEqual({ Mode: "DISTRIBUTED", ExecutionType: "STANDARD" });
    expect(map?.ItemsPath).toBe("$.shards");
    // The results replace the task list, in order: the commit step's {runId, round, shards: ShardResult[]}.
    expect(map?.ResultPath).toBe("$.shards");
    expect(map?.MaxConcurrency).toBe(100);
    // No tolerated failures (the default when none is stated): one bad shard fails the round.
    expect([map?.ToleratedFailurePercentage ?? 0, map?.ToleratedFailureCount ?? 0]).toEqual([0, 0]);
    const shardTask = map?.ItemProcessor?.States[map.ItemProcessor.StartAt];
    expect(invokes(shardTask)).toBe(`<${functionId(STEP_HANDLERS.reconstructShard)}.Arn>`);
    expect(map?.Next).toBe("Commit");

    expect(invokes(states.Commit)).toBe(`<${functionId(STEP_HANDLERS.commit)}.Arn>`);
    expect(states.Commit?.End).toBe(true);
  });

  it("retries every step, shard tasks included, before giving up", () => {
    const shardTask = Object.values(states.ReconstructShards?.ItemProcessor?.States ?? {})[0];
    for (const state of [states.Aggregate, shardTask, states.Commit, states.RecordFailure]) {
      expect(retriesEverything(state)).toBe(true);
    }
  });

  it("does not retry what no retry mends: an update that leaves weights not finite fails the round at once", () => {
    const shardTask = Object.values(states.ReconstructShards?.ItemProcessor?.States ?? {})[0];
    for (const state of [states.Aggregate, shardTask, states.Commit]) {
      const retriers = state?.Retry ?? [];
      const permanent = retriers.findIndex((r) => r.ErrorEquals.includes("NonFiniteUpdate"));
      // Step Functions takes the first retrier that names the error, so it must come before States.ALL.
      expect(retriers[permanent]?.MaxAttempts).toBe(0);
      expect(permanent).toBeLessThan(retriers.findIndex((r) => r.ErrorEquals.includes("States.ALL")));
    }
  });

  it("records the round FAILED through the fail handler when any step is out of retries, then fails", () => {
    for (const name of ["Aggregate", "ReconstructShards", "Commit"]) {
      expect(states[name]?.Catch, name).toEqual([
        { ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "RecordFailure" },
      ]);
    }
    expect(invokes(states.RecordFailure)).toBe(`<${functionId(STEP_HANDLERS.fail)}.Arn>`);
    expect(states.RecordFailure?.Next).toBe("RoundFailed");
    expect(states.RoundFailed?.Type).toBe("Fail");
  });

  it("is a traced Standard state machine logging every event to CloudWatch, without execution data", () => {
    template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: "ALL",
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: Match.anyValue() } }],
      },
    });
  });
});

describe("round deadlines", () => {
  const schedulers = ["start-run.ts", STEP_HANDLERS.commit, STEP_HANDLERS.fail, STEP_HANDLERS.deadline];

  it("has a schedule group and a role EventBridge Scheduler assumes to invoke only the deadline handler", () => {
    template.resourceCountIs("AWS::Scheduler::ScheduleGroup", 1);
    const [roleId] = only(template, "AWS::IAM::Role", {
      Properties: {
        AssumeRolePolicyDocument: {
          Statement: [
            Match.objectLike({
              Principal: { Service: "scheduler.amazonaws.com" },
              Condition: { StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } } },
            }),
          ],
        },
      },
    });
    template.hasResourceProperties("AWS::IAM::Policy", {
      Roles: [{ Ref: roleId }],
      PolicyDocument: {
        Statement: [
          {
            Action: "lambda:InvokeFunction",
            Effect: "Allow",
            Resource: { "Fn::GetAtt": [functionId(STEP_HANDLERS.deadline), "Arn"] },
          },
        ],
      },
    });
  });

  it("lets exactly the handlers that open rounds create schedules in that group and pass that role", () => {
    const deadlineName = functionOf(template, STEP_HANDLERS.deadline).Properties.FunctionName;
    const [, group] = only(template, "AWS::Scheduler::ScheduleGroup");
    const groupName = group.Properties.Name as string;
    for (const file of [...new Set([...ROUTES.map((r) => r.handler), ...Object.values(STEP_HANDLERS)])]) {
      const env = environmentOf(template, file);
      const statements = statementsOf(template, file);
      const creates = statements.filter((s) => s.Action === "scheduler:CreateSchedule");
      const passes = statements.filter((s) => s.Action === "iam:PassRole");
      if (!schedulers.includes(file)) {
        expect([creates, passes, env.DEADLINE_FUNCTION_ARN], file).toEqual([[], [], undefined]);
        continue;
      }
      expect(
        creates.map((s) => flatten(s.Resource)),
        file,
      ).toEqual([`arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${groupName}/*`]);
      expect(passes, file).toEqual([
        expect.objectContaining({
          Resource: { "Fn::GetAtt": [expect.stringMatching(/^DeadlinesSchedulerRole/), "Arn"] },
          Condition: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
        }),
      ]);
      expect(flatten(env.DEADLINE_FUNCTION_ARN)).toBe(
        `arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:${deadlineName}`,
      );
      expect(env.SCHEDULER_GROUP_NAME).toBe(groupName);
      expect(env.SCHEDULER_ROLE_ARN).toEqual({
        "Fn::GetAtt": [expect.stringMatching(/^DeadlinesSchedulerRole/), "Arn"],
      });
    }
  });
});

describe("lost deadlines", () => {
  it("retries a failed deadline call twice, then keeps it in an encrypted queue that an alarm watches", () => {
    const [queueId] = only(template, "AWS::SQS::Queue", {
      Properties: { SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 },
    });
    const [, config] = only(template, "AWS::Lambda::EventInvokeConfig", {
      Properties: { FunctionName: { Ref: functionId(STEP_HANDLERS.deadline) } },
    });
    expect(config.Properties).toMatchObject({
      MaximumRetryAttempts: 2,
      DestinationConfig: { OnFailure: { Destination: { "Fn::GetAtt": [queueId, "Arn"] } } },
    });
    expect(statementsOf(template, STEP_HANDLERS.deadline)).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining(["sqs:SendMessage"]),
        Resource: { "Fn::GetAtt": [queueId, "Arn"] },
      }),
    );
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": [queueId, "QueueName"] } }],
      Threshold: 1,
    });
  });
});

describe("alarms", () => {
  it("alarms on failed or timed-out aggregations into the encrypted alarm topic", () => {
    const [topicId] = only(template, "AWS::SNS::Topic", { Properties: { KmsMasterKeyId: Match.anyValue() } });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmActions: [{ Ref: topicId }],
      Threshold: 1,
      ComparisonOperator: "GreaterThanOrEqualToThreshold",
      Metrics: Match.arrayWith([
        Match.objectLike({
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: "ExecutionsFailed" }) }),
        }),
        Match.objectLike({
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: "ExecutionsTimedOut" }) }),
        }),
      ]),
    });
  });

  it("alarms on errors of every handler, and on deadlines the scheduler could not deliver", () => {
    const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"));
    const errorAlarms = alarms.filter((a) => a.Properties.MetricName === "Errors");
    const watched = errorAlarms.map((a) => a.Properties.Dimensions[0].Value.Ref).sort();
    expect(watched).toEqual(Object.keys(template.findResources("AWS::Lambda::Function")).sort());
    expect(
      alarms.some(
        (a) => a.Properties.Namespace === "AWS/Scheduler" && a.Properties.MetricName === "TargetErrorCount",
      ),
    ).toBe(true);
  });
});

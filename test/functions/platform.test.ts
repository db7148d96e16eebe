import { ConflictException } from "@aws-sdk/client-scheduler";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  type ExecutionStatus,
  type StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AwsClients, awsPlatform, scheduleTime } from "../../functions/platform.ts";

describe("a deadline's at() time", () => {
  it("is the deadline rounded up to a whole second: never before it, less than a second after", () => {
    expect(scheduleTime(Date.parse("2026-11-26T15:14:04.334Z"))).toBe("2026-11-26T15:14:05");
    expect(scheduleTime(Date.parse("2026-11-26T15:14:04.000Z"))).toBe("2026-11-26T15:14:04");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4e12 }), (deadline) => {
        const at = Date.parse(`${scheduleTime(deadline)}Z`);
        expect(at).toBeGreaterThanOrEqual(deadline);
        expect(at - deadline).toBeLessThan(1000);
      }),
    );
  });
});

// The AWS services cannot run here: these stand in at the SDK boundary, answering as the services document.
const STATE_MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:ferret-aggregation";
const env = {
  STATE_MACHINE_ARN: STATE_MACHINE,
  DEADLINE_FUNCTION_ARN: "arn:aws:lambda:eu-west-1:123456789012:function:deadline",
  SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/scheduler",
};
beforeEach(() => Object.assign(process.env, env));
afterEach(() => {
  for (const name of Object.keys(env)) delete process.env[name];
});

/**
 * Step Functions holding `executions` (name → status). As the service does, a start under a taken name is
 * refused unless that execution runs (then it is answered as the first start was), and a new one runs.
 */
function stepFunctions(executions: Record<string, ExecutionStatus> = {}) {
  const started: string[] = [];
  const sfn = {
    send: async (command: StartExecutionCommand | DescribeExecutionCommand) => {
      if (command instanceof DescribeExecutionCommand) {
        return { status: executions[String(command.input.executionArn).split(":").at(-1) as string] };
      }
      const { name, stateMachineArn, input } = command.input;
      expect({ stateMachineArn, input }).toEqual({
        stateMachineArn: STATE_MACHINE,
        input: '{"runId":"run-1","round":0}',
      });
      const status = executions[name as string];
      if (status !== undefined && status !== "RUNNING") {
        throw new ExecutionAlreadyExists({ message: "Execution Already Exists", $metadata: {} });
      }
      if (status === undefined) started.push(name as string);
      executions[name as string] = "RUNNING";
      return { executionArn: `arn:${name}` };
    },
  };
  return { started, clients: { sfn, scheduler: { send: async () => ({}) } } as unknown as AwsClients };
}

describe("starting a round's aggregation in AWS", () => {
  it("starts one execution named after the round", async () => {
    const { started, clients } = stepFunctions();
    await awsPlatform(clients).startAggregation("run-1", 0);
    expect(started).toEqual(["run-1-round-0"]);
  });

  it.each(["RUNNING", "PENDING_REDRIVE", "SUCCEEDED"] as const)(
    "leaves an execution that is %s alone",
    async (status) => {
      const { started, clients } = stepFunctions({ "run-1-round-0": status });
      await awsPlatform(clients).startAggregation("run-1", 0);
      expect(started).toEqual([]);
    },
  );

  it.each(["FAILED", "TIMED_OUT", "ABORTED"] as const)(
    "runs the steps again after one that %s",
    async (status) => {
      const { started, clients } = stepFunctions({ "run-1-round-0": status });
      await awsPlatform(clients).startAggregation("run-1", 0);
      expect(started).toEqual(["run-1-round-0-retry-1"]);
    },
  );

  it("starts no second repair while the first runs, and a third after the second failed", async () => {
    const executions: Record<string, ExecutionStatus> = { "run-1-round-0": "TIMED_OUT" };
    const { started, clients } = stepFunctions(executions);
    const platform = awsPlatform(clients);
    await platform.startAggregation("run-1", 0);
    await platform.startAggregation("run-1", 0);
    expect(started).toEqual(["run-1-round-0-retry-1"]);
    executions["run-1-round-0-retry-1"] = "FAILED";
    await platform.startAggregation("run-1", 0);
    expect(started).toEqual(["run-1-round-0-retry-1", "run-1-round-0-retry-2"]);
  });
});

describe("scheduling a round's deadline in AWS", () => {
  it("takes a schedule that already exists (a repair after a crash) as done, and reports other errors", async () => {
    const refuse = (error: Error) =>
      ({
        sfn: { send: async () => ({}) },
        scheduler: { send: async () => Promise.reject(error) },
      }) as unknown as AwsClients;
    const exists = new ConflictException({
      message: "Schedule already exists",
      Message: "Schedule already exists",
      $metadata: {},
    });
    await expect(
      awsPlatform(refuse(exists)).scheduleDeadline("run-1", 1, Date.now()),
    ).resolves.toBeUndefined();
    await expect(
      awsPlatform(refuse(new Error("throttled"))).scheduleDeadline("run-1", 1, Date.now()),
    ).rejects.toThrow("throttled");
  });
});

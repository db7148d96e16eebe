// The AWS side of Platform: Step Functions runs the aggregation, EventBridge Scheduler fires the deadline.
import { ConflictException, CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { optionalEnv, requireEnv } from "./env.ts";
import type { Platform } from "./services.ts";

/** The AWS clients the platform calls; tests pass stand-ins at this SDK boundary. */
export interface AwsClients {
  sfn: Pick<SFNClient, "send">;
  scheduler: Pick<SchedulerClient, "send">;
}

export function awsPlatform(
  { sfn, scheduler }: AwsClients = { sfn: new SFNClient({}), scheduler: new SchedulerClient({}) },
): Platform {
  return {
    async startAggregation(runId, round) {
      const stateMachineArn = requireEnv("STATE_MACHINE_ARN");
      const input = JSON.stringify({ runId, round });
      // A name stays taken after its execution closes. Callers start a round they find AGGREGATING, so one that
      // closed otherwise than by committing (its timeout, an operator's stop, a failure its catch did not record)
      // left the round stuck: the steps are re-runnable, so they run again under the round's next name. The
      // names are fixed (…-round-N, …-round-N-retry-1, …), so a second repair finds the first one's execution
      // instead of starting another; a start repeated while one runs is answered by the service as the first.
      for (let retry = 0; ; retry++) {
        const name = `${runId}-round-${round}${retry === 0 ? "" : `-retry-${retry}`}`;
        try {
          await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input }));
          return;
        } catch (error) {
          if (!(error instanceof ExecutionAlreadyExists)) throw error;
        }
        const executionArn = `${stateMachineArn.replace(":stateMachine:", ":execution:")}:${name}`;
        const { status } = await sfn.send(new DescribeExecutionCommand({ executionArn }));
        if (status === "RUNNING" || status === "PENDING_REDRIVE" || status === "SUCCEEDED") return;
      }
    },
    async scheduleDeadline(runId, round, deadline) {
      try {
        // The name is unique per round: scheduling a round again (a repair after a crash) is refused, and the
        // first schedule stands.
        await scheduler.send(
          new CreateScheduleCommand({
            Name: `${runId}-round-${round}`,
            GroupName: optionalEnv("SCHEDULER_GROUP_NAME"),
            ScheduleExpression: `at(${scheduleTime(deadline)})`,
            FlexibleTimeWindow: { Mode: "OFF" },
            ActionAfterCompletion: "DELETE",
            Target: {
              Arn: requireEnv("DEADLINE_FUNCTION_ARN"),
              RoleArn: requireEnv("SCHEDULER_ROLE_ARN"),
              Input: JSON.stringify({ runId, round }),
            },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConflictException)) throw error;
      }
    },
  };
}

/**
 * at() takes whole seconds (UTC, no zone): the deadline rounded up, so that the schedule never fires before it.
 * Cutting the milliseconds off made it fire up to a second early, and the handler found the round not yet due.
 */
export function scheduleTime(deadline: number): string {
  return new Date(Math.ceil(deadline / 1000) * 1000).toISOString().slice(0, 19);
}

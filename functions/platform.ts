// The AWS side of Platform: Step Functions runs the aggregation, EventBridge Scheduler fires the deadline.
import { ConflictException, CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { optionalEnv, requireEnv } from "./env.ts";
import type { Platform } from "./services.ts";

export function awsPlatform(): Platform {
  const sfn = new SFNClient({});
  const scheduler = new SchedulerClient({});
  return {
    async startAggregation(runId, round) {
      try {
        // The execution name is unique per round: a second start for the same round is refused by the service.
        await sfn.send(
          new StartExecutionCommand({
            stateMachineArn: requireEnv("STATE_MACHINE_ARN"),
            name: `${runId}-round-${round}`,
            input: JSON.stringify({ runId, round }),
          }),
        );
      } catch (error) {
        if (!(error instanceof ExecutionAlreadyExists)) throw error;
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

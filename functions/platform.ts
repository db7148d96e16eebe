// The AWS side of Platform: Step Functions runs the aggregation, EventBridge Scheduler fires the deadline.
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
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
      const at = new Date(deadline).toISOString().slice(0, 19);
      await scheduler.send(
        new CreateScheduleCommand({
          Name: `${runId}-round-${round}`,
          GroupName: optionalEnv("SCHEDULER_GROUP_NAME"),
          ScheduleExpression: `at(${at})`,
          FlexibleTimeWindow: { Mode: "OFF" },
          ActionAfterCompletion: "DELETE",
          Target: {
            Arn: requireEnv("DEADLINE_FUNCTION_ARN"),
            RoleArn: requireEnv("SCHEDULER_ROLE_ARN"),
            Input: JSON.stringify({ runId, round }),
          },
        }),
      );
    },
  };
}

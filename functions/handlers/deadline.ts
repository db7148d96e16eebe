// EventBridge Scheduler target, input {runId, round}, fired at the round's deadline. With at least the minimum
// uploads the round closes and aggregates; below it the round FAILS ("deadline passed with n of the minimum m
// uploads") and the next round opens on the same checkpoint with a fresh seed.

import { observed } from "../observability.ts";
import type { RoundRef } from "../rounds/aggregation.ts";
import { closeAtDeadline } from "../rounds/lifecycle.ts";
import { services } from "../services.ts";

export const handler = observed(async (event: RoundRef) => {
  const outcome = await closeAtDeadline(services(), event.runId, event.round);
  // The schedule fires at the deadline rounded up to a second, by the scheduler's clock. Should this clock still
  // read earlier, failing hands the event to Lambda's retries of asynchronous invocations (a minute later).
  if (outcome.action === "early") {
    throw new Error(`run ${event.runId} round ${event.round}: invoked before its deadline; to be retried`);
  }
  return outcome;
});

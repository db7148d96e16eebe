// EventBridge Scheduler target, input {runId, round}, fired at the round's deadline. With at least the minimum
// uploads the round closes and aggregates; below it the round FAILS ("deadline passed with n of the minimum m
// uploads") and the next round opens on the same checkpoint with a fresh seed.

import { observed } from "../observability.ts";
import type { RoundRef } from "../rounds/aggregation.ts";
import { closeAtDeadline } from "../rounds/lifecycle.ts";
import { services } from "../services.ts";

export const handler = observed((event: RoundRef) => closeAtDeadline(services(), event.runId, event.round));

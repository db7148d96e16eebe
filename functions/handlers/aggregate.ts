// State machine step 1. Input {runId, round} of a round already moved OPEN -> AGGREGATING (by the upload that met
// the quorum, or by the deadline). Writes the update-log entry; output {runId, round, shards} for the Map state.

import { observed } from "../observability.ts";
import { aggregateRound, type RoundRef } from "../rounds/aggregation.ts";
import { services } from "../services.ts";

export const handler = observed(async (event: RoundRef) => ({
  runId: event.runId,
  round: event.round,
  shards: await aggregateRound(services(), event),
}));

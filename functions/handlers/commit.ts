// State machine step 3: input {runId, round} (the Map's results may be dropped: each shard task left its digest in
// S3). Writes the manifest last, commits AGGREGATING -> DONE, and opens the next round if the run is active.

import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { metrics, observed } from "../observability.ts";
import { commitRound, type RoundRef } from "../rounds/aggregation.ts";
import { services } from "../services.ts";

export const handler = observed(async (event: RoundRef) => {
  const manifest = await commitRound(services(), event);
  metrics.addMetric("round_committed", MetricUnit.Count, 1);
  return {
    runId: event.runId,
    round: event.round,
    checkpoint: manifest.checkpoint,
    shards: manifest.shards.length,
  };
});

// State machine catch: after retries are spent, input {runId, round, error: {Error, Cause}} marks the round
// AGGREGATING -> FAILED with that reason and lets the run move on to a fresh round on the same checkpoint.
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { metrics, observed } from "../observability.ts";
import { failAggregation, type RoundRef } from "../rounds/aggregation.ts";
import { services } from "../services.ts";

export interface FailInput extends RoundRef {
  error?: { Error?: string; Cause?: string };
}

export const handler = observed(async (event: FailInput) => {
  const reason = `${event.error?.Error ?? "aggregation failed"}: ${event.error?.Cause ?? "no cause given"}`;
  metrics.addMetric("aggregation_failed", MetricUnit.Count, 1);
  await failAggregation(services(), event, reason.slice(0, 1000));
  return { runId: event.runId, round: event.round, state: "FAILED", reason };
});

// Limits a run may set on each upload. Every upload is checked finite and well formed, yet a selected client that
// is wrong or hostile can still send a finite update of any size and claim any example count, and so move the
// global model as far as it likes: the mean weighs its update by its claim. With these set, no client counts for
// more than the limits allow, and an honest client beyond them still takes part.
import { BadRequest } from "../errors.ts";
import type { RunConfig } from "../storage/records.ts";

type Limits = Partial<Pick<RunConfig, "maxUploadNorm" | "maxExamples">>;

/** The example count an upload is weighed by: its claim, at most maxExamples. */
export const examplesCounted = ({ maxExamples }: Limits, examples: number): number =>
  maxExamples === undefined ? examples : Math.min(examples, maxExamples);

/** The L2 norm of float32 values, summed in float64 in order (the same on every machine). */
export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum);
}

/**
 * Coefficients scaled down to L2 norm maxUploadNorm when their norm is larger (norm clipping): the upload keeps its
 * direction and counts at most that far. Each value is scaled in float64 and rounded once: the same bytes
 * everywhere, as the aggregation that follows needs.
 */
export function clippedToNorm({ maxUploadNorm }: Limits, values: Float32Array, norm: number): Float32Array {
  if (maxUploadNorm === undefined || norm <= maxUploadNorm) return values;
  const factor = maxUploadNorm / norm;
  return values.map((v) => v * factor);
}

/**
 * fedavg's update is committed as the client sent it, so it cannot be clipped: one beyond the limit is refused,
 * and the client skips the round.
 */
export function requireNormWithin({ maxUploadNorm }: Limits, norm: number, what: string): void {
  if (maxUploadNorm !== undefined && norm > maxUploadNorm) {
    throw new BadRequest(
      "norm_exceeded",
      `the ${what} has L2 norm ${norm}; this run takes at most ${maxUploadNorm} (maxUploadNorm)`,
    );
  }
}

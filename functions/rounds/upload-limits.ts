// Limits a run may set on each upload. Every upload is checked finite and well formed, yet a selected client that
// is wrong or hostile can still send a finite update of any size and claim any example count, and so move the
// global model as far as it likes: the mean weighs its update by its claim. With these set, such an upload is
// refused like any other bad input, before anything is written.
import { BadRequest } from "../errors.ts";
import type { RunConfig } from "../storage/records.ts";

type Limits = Partial<Pick<RunConfig, "maxUploadNorm" | "maxExamples">>;

export function requireExamplesWithin({ maxExamples }: Limits, examples: number): void {
  if (maxExamples !== undefined && examples > maxExamples) {
    throw new BadRequest(
      "too_many_examples",
      `the upload claims ${examples} examples; this run takes at most ${maxExamples} (maxExamples)`,
    );
  }
}

/** The L2 norm of float32 values, summed in float64 in order (the same on every machine). */
export function l2Norm(values: Float32Array): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum);
}

export function requireNormWithin({ maxUploadNorm }: Limits, norm: number, what: string): void {
  if (maxUploadNorm !== undefined && norm > maxUploadNorm) {
    throw new BadRequest(
      "norm_exceeded",
      `the ${what} has L2 norm ${norm}; this run takes at most ${maxUploadNorm} (maxUploadNorm)`,
    );
  }
}

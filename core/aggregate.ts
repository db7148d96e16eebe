/**
 * Aggregation: ḡ = Σ_i p_i·γ_i with p_i ∝ example count (or equal). Accumulated in float64 over clients sorted
 * by id (code-unit order), then divided by Σ weights and rounded once to float32, so the bytes do not depend on
 * the order in which uploads arrived.
 */
import { assertFinite, assertLength, InvalidArgumentError } from "./errors.ts";

export interface ClientUpload {
  clientId: string;
  coefficients: Float32Array;
  /** Number of training examples behind this update (the weight under "examples"). */
  examples: number;
}

export type Weighting = "examples" | "equal";

export function aggregate(uploads: readonly ClientUpload[], weighting: Weighting): Float32Array {
  if (weighting !== "examples" && weighting !== "equal") {
    throw new InvalidArgumentError(
      `weighting is ${JSON.stringify(weighting)}; expected "examples" or "equal"`,
    );
  }
  if (uploads.length === 0) throw new InvalidArgumentError("no uploads to aggregate; expected at least one");
  const sorted = [...uploads].sort((a, b) =>
    a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0,
  );
  const length = (sorted[0] as ClientUpload).coefficients.length;
  let totalWeight = 0;
  for (const [i, upload] of sorted.entries()) {
    if (i > 0 && upload.clientId === sorted[i - 1]?.clientId) {
      throw new InvalidArgumentError(
        `client "${upload.clientId}" appears twice; expected one upload per client`,
      );
    }
    assertLength(upload.coefficients.length, length, `coefficients of client "${upload.clientId}"`);
    assertFinite(upload.coefficients, `coefficients of client "${upload.clientId}"`);
    if (weighting === "examples" && (!Number.isSafeInteger(upload.examples) || upload.examples < 1)) {
      throw new InvalidArgumentError(
        `client "${upload.clientId}" reports ${upload.examples} examples; expected a positive integer`,
      );
    }
    totalWeight += weighting === "examples" ? upload.examples : 1;
  }
  const sums = new Float64Array(length);
  for (const upload of sorted) {
    const weight = weighting === "examples" ? upload.examples : 1;
    const c = upload.coefficients;
    for (let k = 0; k < length; k++) sums[k] = (sums[k] as number) + weight * (c[k] as number);
  }
  const mean = new Float32Array(length);
  for (let k = 0; k < length; k++) mean[k] = (sums[k] as number) / totalWeight;
  return mean;
}

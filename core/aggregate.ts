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

export interface ClientWeight {
  clientId: string;
  weight: number;
}

/**
 * Each client's weight (its example count, or 1), in aggregation order: sorted by client id in code-unit order.
 * `total` is their sum. Refuses an empty list, a client listed twice, and a non-positive example count.
 */
export function clientWeights(
  uploads: readonly Pick<ClientUpload, "clientId" | "examples">[],
  weighting: Weighting,
): { weights: ClientWeight[]; total: number } {
  if (weighting !== "examples" && weighting !== "equal") {
    throw new InvalidArgumentError(
      `weighting is ${JSON.stringify(weighting)}; expected "examples" or "equal"`,
    );
  }
  if (uploads.length === 0) throw new InvalidArgumentError("no uploads to aggregate; expected at least one");
  const sorted = [...uploads].sort((a, b) =>
    a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0,
  );
  let total = 0;
  const weights = sorted.map((upload, i) => {
    if (i > 0 && upload.clientId === sorted[i - 1]?.clientId) {
      throw new InvalidArgumentError(
        `client "${upload.clientId}" appears twice; expected one upload per client`,
      );
    }
    if (weighting === "examples" && (!Number.isSafeInteger(upload.examples) || upload.examples < 1)) {
      throw new InvalidArgumentError(
        `client "${upload.clientId}" reports ${upload.examples} examples; expected a positive integer`,
      );
    }
    const weight = weighting === "examples" ? upload.examples : 1;
    total += weight;
    return { clientId: upload.clientId, weight };
  });
  return { weights, total };
}

export function aggregate(uploads: readonly ClientUpload[], weighting: Weighting): Float32Array {
  const { weights, total } = clientWeights(uploads, weighting);
  const byClient = new Map(uploads.map((u) => [u.clientId, u.coefficients]));
  const ordered = weights.map(({ clientId, weight }) => {
    const coefficients = byClient.get(clientId) as Float32Array;
    return { clientId, weight, coefficients };
  });
  const length = (ordered[0] as { coefficients: Float32Array }).coefficients.length;
  for (const { clientId, coefficients } of ordered) {
    assertLength(coefficients.length, length, `coefficients of client "${clientId}"`);
    assertFinite(coefficients, `coefficients of client "${clientId}"`);
  }
  const sums = new Float64Array(length);
  for (const { weight, coefficients: c } of ordered) {
    for (let k = 0; k < length; k++) sums[k] = (sums[k] as number) + weight * (c[k] as number);
  }
  const mean = new Float32Array(length);
  for (let k = 0; k < length; k++) mean[k] = (sums[k] as number) / total;
  return mean;
}

/** Gradient bookkeeping between the engine and the optimizer: accumulation and global-norm clipping. */
import { checkGradients, type ParamRecord, sortedNames, TrainingError } from "./params.ts";

/** √(Σ g²) over every tensor, summed in float64 in sorted-name order. */
export function globalNorm(grads: ParamRecord): number {
  let sum = 0;
  for (const name of sortedNames(grads)) {
    for (const x of grads[name] as Float32Array) sum += x * x;
  }
  return Math.sqrt(sum);
}

/** The global norm, or an error if it is NaN or infinite: stepping on such a gradient would ruin weights. */
export function finiteGlobalNorm(grads: ParamRecord): number {
  const norm = globalNorm(grads);
  if (!Number.isFinite(norm)) {
    throw new TrainingError(
      "NON_FINITE_GRADIENT",
      `gradient norm is ${norm}; a gradient holds NaN or ±Infinity`,
    );
  }
  return norm;
}

/**
 * Scales all gradients by one factor so their global norm is at most `maxNorm` (Pascanu et al. 2013).
 * Returns the norm before clipping; a NaN or infinite norm is an error.
 */
export function clipByGlobalNorm(grads: ParamRecord, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new TrainingError("BAD_OPTION", `maxNorm must be > 0, got ${maxNorm}`);
  const norm = finiteGlobalNorm(grads);
  if (norm > maxNorm) {
    const scale = maxNorm / norm;
    for (const g of Object.values(grads)) {
      for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) * scale;
    }
  }
  return norm;
}

/**
 * Weighted mean of gradients over micro-batches. Weighting each micro-batch by its number of loss tokens
 * makes the result the gradient of the mean loss over all their tokens, as one large batch would give.
 */
export class GradientAccumulator {
  private sum: ParamRecord | undefined;
  private totalWeight = 0;

  add(grads: ParamRecord, weight = 1): void {
    if (!(weight >= 0 && Number.isFinite(weight))) {
      throw new TrainingError("BAD_WEIGHT", `micro-batch weight must be finite and ≥ 0, got ${weight}`);
    }
    if (this.sum === undefined) {
      this.sum = Object.fromEntries(
        Object.entries(grads).map(([name, g]) => [name, new Float32Array(g.length)]),
      );
    }
    checkGradients(this.sum, grads);
    for (const [name, g] of Object.entries(grads)) {
      const s = this.sum[name] as Float32Array;
      for (let i = 0; i < g.length; i++) s[i] = (s[i] as number) + weight * (g[i] as number);
    }
    this.totalWeight += weight;
  }

  get count(): number {
    return this.totalWeight;
  }

  /** The weighted mean so far; the accumulator starts over afterwards. */
  take(): ParamRecord {
    const sum = this.sum;
    if (sum === undefined || this.totalWeight === 0) {
      throw new TrainingError("NOTHING_ACCUMULATED", "no gradients with positive weight were added");
    }
    for (const g of Object.values(sum)) {
      for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) / this.totalWeight;
    }
    this.sum = undefined;
    this.totalWeight = 0;
    return sum;
  }
}

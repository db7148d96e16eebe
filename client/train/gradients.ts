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

/** `norm`, or an error if it is NaN or infinite: stepping on such a gradient would ruin weights. `where` (e.g.
 * " at step 3") says which gradient it was. */
export function requireFiniteNorm(norm: number, where = ""): number {
  if (!Number.isFinite(norm)) {
    throw new TrainingError(
      "NON_FINITE_GRADIENT",
      `gradient norm is ${norm}${where}; a gradient holds NaN or ±Infinity`,
    );
  }
  return norm;
}

/** The global norm, or an error if it is NaN or infinite. */
export const finiteGlobalNorm = (grads: ParamRecord): number => requireFiniteNorm(globalNorm(grads));

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
 * The sum arrays are kept from one optimizer step to the next: fresh ones would cost a trainer 4 bytes per
 * parameter of newly mapped memory every step, whose page faults cost as much as a large matrix product.
 */
export class GradientAccumulator {
  private sum: ParamRecord | undefined;
  private totalWeight = 0;
  /** Whether `sum` holds this step's micro-batches (false after take(): it then holds the returned mean). */
  private summing = false;

  add(grads: ParamRecord, weight = 1): void {
    if (!(weight >= 0 && Number.isFinite(weight))) {
      throw new TrainingError("BAD_WEIGHT", `micro-batch weight must be finite and ≥ 0, got ${weight}`);
    }
    if (!this.summing) this.start(grads);
    const sum = this.sum as ParamRecord;
    checkGradients(sum, grads);
    for (const [name, g] of Object.entries(grads)) {
      const s = sum[name] as Float32Array;
      for (let i = 0; i < g.length; i++) s[i] = (s[i] as number) + weight * (g[i] as number);
    }
    this.totalWeight += weight;
  }

  get count(): number {
    return this.totalWeight;
  }

  /** The weighted mean so far; the accumulator starts over afterwards and reuses the returned arrays from the
   * next add() on, so use them before then. */
  take(): ParamRecord {
    const sum = this.sum;
    if (!this.summing || sum === undefined || this.totalWeight === 0) {
      throw new TrainingError("NOTHING_ACCUMULATED", "no gradients with positive weight were added");
    }
    for (const g of Object.values(sum)) {
      for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) / this.totalWeight;
    }
    this.summing = false;
    this.totalWeight = 0;
    return sum;
  }

  /** Zeroed sum arrays shaped like `grads`: the previous step's when they match, else new ones. */
  private start(grads: ParamRecord): void {
    const names = Object.keys(grads);
    const reusable =
      this.sum !== undefined &&
      Object.keys(this.sum).length === names.length &&
      names.every((name) => this.sum?.[name]?.length === grads[name]?.length);
    if (reusable) for (const s of Object.values(this.sum as ParamRecord)) s.fill(0);
    else
      this.sum = Object.fromEntries(names.map((name) => [name, new Float32Array(grads[name]?.length ?? 0)]));
    this.summing = true;
  }
}

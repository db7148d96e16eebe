/** Parameters and gradients as the trainer sees them: flat f32 arrays keyed by Hugging Face tensor name. */
export type ParamRecord = Record<string, Float32Array>;

/** Training cannot go on: mismatched gradients, non-finite values, bad options. */
export class TrainingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "TrainingError";
  }
}

/** Names in a fixed (sorted) order, so float sums over tensors never depend on insertion order. */
export function sortedNames(record: ParamRecord): string[] {
  return Object.keys(record).sort();
}

/** Checks that `grads` has exactly the tensors of `params`, each of the same length. */
export function checkGradients(params: ParamRecord, grads: ParamRecord): void {
  for (const name of Object.keys(params)) {
    const g = grads[name];
    if (g === undefined) throw new TrainingError("GRADIENT_MISSING", `no gradient for parameter "${name}"`);
    const n = (params[name] as Float32Array).length;
    if (g.length !== n) {
      throw new TrainingError(
        "GRADIENT_SHAPE",
        `gradient of "${name}" has ${g.length} values, expected ${n}`,
      );
    }
  }
  for (const name of Object.keys(grads)) {
    if (!(name in params))
      throw new TrainingError("GRADIENT_UNKNOWN", `gradient for unknown parameter "${name}"`);
  }
}

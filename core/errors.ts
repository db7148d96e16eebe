/**
 * Typed errors for core/. Every message says what was received and what was expected, so a caller (a Lambda
 * handler turning it into a 4xx, a CLI printing it) can pass it on unchanged.
 */
export class FerretCoreError extends Error {
  override name = "FerretCoreError";
}

/** Two buffers or counts that must agree do not (delta vs plan, coefficients vs K, ...). */
export class LengthMismatchError extends FerretCoreError {
  override name = "LengthMismatchError";
}

/** A NaN or ±Infinity where only finite numbers make sense. */
export class NonFiniteError extends FerretCoreError {
  override name = "NonFiniteError";
}

/** A block plan that is malformed, or that does not describe the tensors it is used with. */
export class PlanError extends FerretCoreError {
  override name = "PlanError";
}

/** A projection family name that core does not implement. */
export class UnknownFamilyError extends FerretCoreError {
  override name = "UnknownFamilyError";
}

/** Any other argument outside its documented domain (a seed out of range, a negative count, ...). */
export class InvalidArgumentError extends FerretCoreError {
  override name = "InvalidArgumentError";
}

/** Throws NonFiniteError naming the first non-finite entry of `values`. */
export function assertFinite(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v)) {
      throw new NonFiniteError(`${what}[${i}] is ${v}; expected a finite number`);
    }
  }
}

export function assertLength(actual: number, expected: number, what: string): void {
  if (actual !== expected) {
    throw new LengthMismatchError(`${what} has length ${actual}; expected ${expected}`);
  }
}

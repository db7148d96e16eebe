/**
 * FedKSeed's seed pool (Qin et al., ICML 2024, arXiv 2312.06353) in core's gaussian basis. A run fixes a pool
 * seed and a pool size K; direction z_s (s < K) is basis s of one block that covers every parameter, so entry j
 * of z_s is `gaussianEntry({ key: poolSeed, block: 0 }, s, j)`. Then Σ_s c_s z_s is exactly
 * `reconstruct(w, c, poolSeed, seedPoolPlan(plan, K), "gaussian", scale)`: the same kernels, the same bytes on
 * the server and on every client. The gaussian kernels skip zero coefficients, so a one-hot c (one local
 * zeroth-order step) costs one pass over the P parameters, and a round's aggregate one pass per seed drawn.
 *
 * A client's upload is its T steps as (seed index, scalar gradient) pairs, 8 bytes each in step order:
 * uint32 little-endian index < K, then float32 little-endian g.
 */
import { InvalidArgumentError, LengthMismatchError, NonFiniteError, PlanError } from "./errors.ts";
import { MAX_BLOCK_SIZE, type Plan } from "./plan.ts";

/** The run plan's tensors as one block of all P parameters with k = K (pool directions 0 … K−1). */
export function seedPoolPlan(runPlan: Plan, poolSize: number): Plan {
  const { totalParams, tensors } = runPlan;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new InvalidArgumentError(`seed pool size is ${poolSize}; expected a positive integer`);
  }
  if (poolSize > totalParams) {
    throw new InvalidArgumentError(
      `seed pool size ${poolSize} exceeds the ${totalParams} parameters; expected at most one seed per parameter`,
    );
  }
  if (totalParams > MAX_BLOCK_SIZE) {
    throw new PlanError(
      `the seed pool's single block would hold ${totalParams} parameters; expected ≤ ${MAX_BLOCK_SIZE}`,
    );
  }
  return {
    version: 1,
    totalParams,
    totalK: poolSize,
    tensors: tensors.map((t) => ({ ...t, shape: [...t.shape] })),
    blocks: [{ start: 0, size: totalParams, k: poolSize, tensors: tensors.map((t) => t.name) }],
  };
}

/** One zeroth-order step: the pool direction it used and its projected gradient g ≈ ⟨∇L, z_s⟩. */
export interface SeedPair {
  index: number;
  gradient: number;
}

export const SEED_PAIR_BYTES = 8;

function assertFiniteGradient(gradient: number, pair: number): void {
  if (!Number.isFinite(gradient)) {
    throw new NonFiniteError(`pair ${pair} has gradient ${gradient} as float32; expected a finite number`);
  }
}

/** The upload body: each pair as uint32 LE index, float32 LE gradient, in step order. */
export function encodeSeedPairs(pairs: readonly SeedPair[], poolSize: number): Uint8Array {
  const bytes = new Uint8Array(pairs.length * SEED_PAIR_BYTES);
  const view = new DataView(bytes.buffer);
  for (const [i, { index, gradient }] of pairs.entries()) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= poolSize) {
      throw new InvalidArgumentError(
        `pair ${i} has seed index ${index}; expected an integer in [0, ${poolSize})`,
      );
    }
    assertFiniteGradient(Math.fround(gradient), i);
    view.setUint32(i * SEED_PAIR_BYTES, index, true);
    view.setFloat32(i * SEED_PAIR_BYTES + 4, gradient, true);
  }
  return bytes;
}

/** Reads an upload body back into pairs, refusing a ragged length, an index ≥ K or a non-finite gradient. */
export function decodeSeedPairs(bytes: Uint8Array, poolSize: number): SeedPair[] {
  if (bytes.byteLength % SEED_PAIR_BYTES !== 0) {
    throw new LengthMismatchError(
      `seed pairs body has ${bytes.byteLength} bytes; expected a multiple of ${SEED_PAIR_BYTES}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pairs: SeedPair[] = [];
  for (let at = 0; at < bytes.byteLength; at += SEED_PAIR_BYTES) {
    const index = view.getUint32(at, true);
    const gradient = view.getFloat32(at + 4, true);
    const i = at / SEED_PAIR_BYTES;
    if (index >= poolSize) {
      throw new InvalidArgumentError(`pair ${i} has seed index ${index}; expected < ${poolSize}`);
    }
    assertFiniteGradient(gradient, i);
    pairs.push({ index, gradient });
  }
  return pairs;
}

// FedKSeed's pool seed: one 64-bit seed per run, fixed for all its rounds, from which the K pool directions are
// generated (core's gaussian basis on the pool plan). Like round seeds it derives from the run's secret salt, so
// nobody without the salt knows the pool before the run starts, and the salt itself never leaves the server.
import { createHash } from "node:crypto";
import { InvalidArgumentError, LengthMismatchError, NonFiniteError } from "../../core/errors.ts";
import { seedToHex } from "../../core/seed.ts";
import { decodeSeedPairs, SEED_PAIR_BYTES, type SeedPair } from "../../core/seed-pool.ts";
import { BadRequest, PayloadTooLarge } from "../errors.ts";
import type { RunConfig, RunRecord, ZerothOrder } from "../storage/records.ts";
import { MAX_SEED_PAIRS } from "./run-config.ts";

/**
 * First 8 bytes (big-endian) of SHA-256("ferret/seed-pool/v1" ‖ 0 ‖ salt), as 16 hex. The domain string differs
 * from round seeds' ("ferret/round-seed/v1"), so the pool seed never equals a round seed of the same run.
 */
export function poolSeedOf(salt: string): string {
  const digest = createHash("sha256").update(`ferret/seed-pool/v1\0${salt}`).digest();
  return seedToHex(digest.readBigUInt64BE(0));
}

/** A fedkseed run's zeroth-order settings (resolveRunConfig always stores them for fedkseed). */
export function zerothOrderOf(config: RunConfig): ZerothOrder {
  if (!config.zerothOrder) throw new Error(`a ${config.strategy} run has no zerothOrder settings`);
  return config.zerothOrder;
}

/** What a selected fedkseed client needs to draw directions: the pool's seed, size K and perturbation ε. */
export function seedPoolOf(run: RunRecord) {
  if (run.config.strategy !== "fedkseed") return undefined;
  const { seedPool, perturbation } = zerothOrderOf(run.config);
  return { seed: poolSeedOf(run.salt), size: seedPool, perturbation };
}

/** Core's decoding refusals, as the 400 codes the upload route answers with. */
function asBadRequest(error: unknown): never {
  if (error instanceof InvalidArgumentError) throw new BadRequest("seed_index_out_of_range", error.message);
  if (error instanceof NonFiniteError) throw new BadRequest("non_finite", error.message);
  if (error instanceof LengthMismatchError) throw new BadRequest("wrong_length", error.message);
  throw error;
}

/**
 * A fedkseed upload body → the client's dense length-K coefficients: each index's gradients summed in float64 in
 * pair order, then rounded once to float32, so core's `aggregate` and `reconstruct` work on it unchanged.
 */
export function denseFromSeedPairs(body: Uint8Array, poolSize: number): Float32Array {
  if (body.byteLength > MAX_SEED_PAIRS * SEED_PAIR_BYTES) {
    throw new PayloadTooLarge(
      `body is ${body.byteLength} bytes; at most ${MAX_SEED_PAIRS} pairs (${MAX_SEED_PAIRS * SEED_PAIR_BYTES} bytes)`,
    );
  }
  if (body.byteLength === 0) {
    throw new BadRequest("wrong_length", `body is 0 bytes; expected 1 to ${MAX_SEED_PAIRS} seed pairs`);
  }
  let pairs: SeedPair[];
  try {
    pairs = decodeSeedPairs(body, poolSize);
  } catch (error) {
    asBadRequest(error);
  }
  const sums = new Float64Array(poolSize);
  for (const { index, gradient } of pairs) sums[index] = (sums[index] as number) + gradient;
  const dense = Float32Array.from(sums);
  const overflow = dense.findIndex((v) => !Number.isFinite(v));
  if (overflow >= 0) {
    throw new BadRequest(
      "non_finite",
      `the gradients for seed index ${overflow} sum to ${sums[overflow]}, beyond float32; all must be finite`,
    );
  }
  return dense;
}

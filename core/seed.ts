/**
 * Round seeds: 64-bit, derived from the run's secret salt and the round number, so every round explores a fresh
 * subspace and nobody without the salt can predict future bases. Seeds travel in JSON as 16 lowercase hex digits
 * (a JSON number cannot hold 64 bits exactly).
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "./errors.ts";

const SEED_HEX = /^[0-9a-f]{16}$/;

/** First 8 bytes (big-endian) of SHA-256("ferret/round-seed/v1" ‖ 0 ‖ salt ‖ 0 ‖ decimal round). */
export function deriveRoundSeed(salt: string, round: number): bigint {
  if (typeof salt !== "string" || salt.length === 0) {
    throw new InvalidArgumentError("salt is empty; expected the run's secret salt string");
  }
  if (!Number.isSafeInteger(round) || round < 0) {
    throw new InvalidArgumentError(`round is ${round}; expected a non-negative integer`);
  }
  const digest = createHash("sha256").update(`ferret/round-seed/v1\0${salt}\0${round}`).digest();
  return digest.readBigUInt64BE(0);
}

export function assertSeed(seed: bigint): void {
  if (typeof seed !== "bigint" || seed < 0n || seed >= 1n << 64n) {
    throw new InvalidArgumentError(`seed is ${String(seed)}; expected a bigint in [0, 2^64)`);
  }
}

export function seedToHex(seed: bigint): string {
  assertSeed(seed);
  return seed.toString(16).padStart(16, "0");
}

export function seedFromHex(hex: string): bigint {
  if (typeof hex !== "string" || !SEED_HEX.test(hex)) {
    throw new InvalidArgumentError(
      `seed ${JSON.stringify(hex)} is malformed; expected 16 lowercase hex digits`,
    );
  }
  return BigInt(`0x${hex}`);
}

// FedKSeed's pool seed: one 64-bit seed per run, fixed for all its rounds, from which the K pool directions are
// generated (core's gaussian basis on the pool plan). Like round seeds it derives from the run's secret salt, so
// nobody without the salt knows the pool before the run starts, and the salt itself never leaves the server.
import { createHash } from "node:crypto";
import { seedToHex } from "../../core/seed.ts";
import type { RunRecord } from "../storage/records.ts";

/**
 * First 8 bytes (big-endian) of SHA-256("ferret/seed-pool/v1" ‖ 0 ‖ salt), as 16 hex. The domain string differs
 * from round seeds' ("ferret/round-seed/v1"), so the pool seed never equals a round seed of the same run.
 */
export function poolSeedOf(salt: string): string {
  const digest = createHash("sha256").update(`ferret/seed-pool/v1\0${salt}`).digest();
  return seedToHex(digest.readBigUInt64BE(0));
}

/** What a selected fedkseed client needs to draw directions: the pool's seed, size K and perturbation ε. */
export function seedPoolOf(run: RunRecord) {
  const { zerothOrder } = run.config;
  if (run.config.strategy !== "fedkseed" || !zerothOrder) return undefined;
  return { seed: poolSeedOf(run.salt), size: zerothOrder.seedPool, perturbation: zerothOrder.perturbation };
}

// Replaying the update log: w_{c+1} = w_c − scale · R(ḡ_r; s_r), exactly the step the server's shard tasks run,
// with the same core function, so the bytes come out the same. A FAILED round has no entry and leaves the
// checkpoint where it was; entries chain by (baseCheckpoint → resultCheckpoint). Per strategy: ferret entries
// use the run plan; fedkseed entries the seed pool plan (K coefficients over one gaussian block, seeded by the
// pool seed); fedavg entries carry no coefficients (the full updates stay on the server), so replay stops there
// and sync downloads the checkpoint. Entries written before strategies existed are ferret's.

import type { Plan } from "../../core/plan.ts";
import { reconstruct } from "../../core/projection.ts";
import { seedFromHex } from "../../core/seed.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";
import { strategyOf, type WireLogEntry } from "../api/routes.ts";

/** The log's base64 little-endian float32 coefficients. */
export function decodeCoefficients(base64: string, expected: number): Float32Array {
  const bytes = Buffer.from(base64, "base64");
  if (bytes.byteLength !== expected * 4) {
    throw new RangeError(
      `log entry holds ${bytes.byteLength} bytes; expected ${expected} float32 coefficients`,
    );
  }
  const values = new Float32Array(expected);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < expected; i++) values[i] = view.getFloat32(i * 4, true);
  return values;
}

/** The plan an entry's coefficients are laid out on. */
function entryPlan(entry: WireLogEntry, plan: Plan): Plan {
  if (strategyOf(entry) !== "fedkseed") return plan;
  if (entry.seedPool === undefined) {
    throw new RangeError(
      `log entry of fedkseed round ${entry.round} has no seedPool; expected the pool size K`,
    );
  }
  return seedPoolPlan(plan, entry.seedPool);
}

/**
 * Applies the entries that lead from checkpoint `from` towards `target`, in place. Returns the checkpoint the
 * weights now hold (`target` when the log covered the whole way, less when entries were missing or a fedavg
 * round stopped the replay: `stoppedBy` names that round) and how many rounds were applied.
 */
export function replay(
  values: Float32Array,
  plan: Plan,
  from: number,
  target: number,
  entries: readonly WireLogEntry[],
): { reached: number; applied: number; stoppedBy?: number } {
  let current = from;
  let applied = 0;
  for (const entry of [...entries].sort((a, b) => a.round - b.round)) {
    if (current === target) break;
    if (entry.baseCheckpoint !== current || entry.resultCheckpoint > target) continue;
    if (strategyOf(entry) === "fedavg") return { reached: current, applied, stoppedBy: entry.round };
    const layout = entryPlan(entry, plan);
    const coefficients = decodeCoefficients(entry.coefficients, layout.totalK);
    reconstruct(values, coefficients, seedFromHex(entry.seed), layout, entry.basis, entry.scale);
    current = entry.resultCheckpoint;
    applied++;
  }
  return { reached: current, applied };
}

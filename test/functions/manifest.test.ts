// Shards are whole plan blocks laid end to end: whatever the plan and shard size, they tile the flat vector, hold
// each block exactly once, and stay within the shard size unless a single block is larger.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildPlan } from "../../core/plan.ts";
import { buildManifest, digestShard, planShards, shardSpecsOf } from "../../functions/rounds/manifest.ts";
import { objectKeys } from "../../functions/storage/objects.ts";

const tensors = fc.array(
  fc.record({ rows: fc.integer({ min: 1, max: 40 }), cols: fc.integer({ min: 1, max: 40 }) }),
  { minLength: 1, maxLength: 12 },
);

const planOf = (shapes: { rows: number; cols: number }[]) => {
  const specs = shapes.map((s, i) => ({ name: `t${i}`, shape: [s.rows, s.cols] }));
  const params = shapes.reduce((sum, s) => sum + s.rows * s.cols, 0);
  return buildPlan(specs, { totalK: Math.min(16, params) });
};

describe("planShards", () => {
  it("tiles the vector with whole blocks, each within the shard size unless alone", () => {
    fc.assert(
      fc.property(tensors, fc.integer({ min: 1, max: 2000 }), (shapes, shardParams) => {
        const plan = planOf(shapes);
        const shards = planShards(plan, shardParams);
        let next = 0;
        const seen: number[] = [];
        for (const [i, shard] of shards.entries()) {
          expect(shard.index).toBe(i);
          expect(shard.start).toBe(next);
          next += shard.length;
          seen.push(...shard.blocks);
          const blockTotal = shard.blocks.reduce((sum, b) => sum + (plan.blocks[b]?.size ?? 0), 0);
          expect(blockTotal).toBe(shard.length);
          if (shard.blocks.length > 1) expect(shard.length).toBeLessThanOrEqual(shardParams);
        }
        expect(next).toBe(plan.totalParams);
        expect(seen).toEqual(plan.blocks.map((_, b) => b));
      }),
    );
  });

  it("is recovered from a manifest exactly", () => {
    fc.assert(
      fc.property(tensors, fc.integer({ min: 1, max: 2000 }), (shapes, shardParams) => {
        const plan = planOf(shapes);
        const shards = planShards(plan, shardParams);
        const weights = new Float32Array(plan.totalParams).map((_, i) => i / 7);
        const results = shards.map((s) =>
          digestShard(
            plan,
            s,
            weights.subarray(s.start, s.start + s.length),
            objectKeys.shard("r", 3, s.index),
          ),
        );
        const manifest = buildManifest("r", 3, plan, results);
        expect(shardSpecsOf(manifest, plan)).toEqual(shards);
        for (const block of manifest.blocks) {
          const bytes = new Uint8Array(weights.buffer, block.start * 4, block.size * 4);
          expect(block.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
        }
      }),
      { numRuns: 30 },
    );
  });

  it("refuses a manifest with a missing shard", () => {
    const plan = planOf([
      { rows: 10, cols: 10 },
      { rows: 10, cols: 10 },
    ]);
    const [first] = planShards(plan, 100).map((s) =>
      digestShard(plan, s, new Float32Array(s.length), objectKeys.shard("r", 1, s.index)),
    );
    expect(() => buildManifest("r", 1, plan, first ? [{ ...first, index: 1 }] : [])).toThrow(
      /shard 0 missing/,
    );
  });
});

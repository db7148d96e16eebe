// Shards tile the flat vector within the shard size whatever the plan: whole plan blocks where they fit, and a
// block larger than a shard cut into pieces. The manifest has one digest per block either way.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildPlan } from "../../core/plan.ts";
import {
  buildManifest,
  cutBlocks,
  digestShard,
  planShards,
  shardSpecsOf,
} from "../../functions/rounds/manifest.ts";
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
  it("tiles the vector within the shard size, holding each block whole or cutting it if larger", () => {
    fc.assert(
      fc.property(tensors, fc.integer({ min: 1, max: 2000 }), (shapes, shardParams) => {
        const plan = planOf(shapes);
        const shards = planShards(plan, shardParams);
        let next = 0;
        const whole: number[] = [];
        for (const [i, shard] of shards.entries()) {
          expect(shard.index).toBe(i);
          expect(shard.start).toBe(next);
          expect(shard.length).toBeGreaterThan(0);
          expect(shard.length).toBeLessThanOrEqual(shardParams);
          next += shard.length;
          whole.push(...shard.blocks);
          const blockTotal = shard.blocks.reduce((sum, b) => sum + (plan.blocks[b]?.size ?? 0), 0);
          // A shard is whole blocks, or one piece of a cut block.
          if (shard.blocks.length > 0) expect(blockTotal).toBe(shard.length);
        }
        expect(next).toBe(plan.totalParams);
        const larger = plan.blocks.flatMap((b, i) => (b.size > shardParams ? [i] : []));
        expect(cutBlocks(plan, shards)).toEqual(larger);
        expect([...whole, ...larger].sort((x, y) => x - y)).toEqual(plan.blocks.map((_, b) => b));
        for (const index of larger) {
          const { start, size } = plan.blocks[index] as { start: number; size: number };
          const pieces = shards.filter((s) => s.start >= start && s.start < start + size);
          expect(pieces.map((s) => s.blocks)).toEqual(pieces.map(() => []));
          expect(pieces.reduce((sum, s) => sum + s.length, 0)).toBe(size);
          expect(pieces).toHaveLength(Math.ceil(size / shardParams));
          const lengths = pieces.map((s) => s.length);
          expect(Math.max(...lengths) - Math.min(...lengths)).toBeLessThanOrEqual(1);
        }
      }),
    );
  });

  it("is recovered from a manifest exactly, with every block's digest, cut or whole", () => {
    fc.assert(
      fc.property(tensors, fc.integer({ min: 1, max: 2000 }), (shapes, shardParams) => {
        const plan = planOf(shapes);
        const shards = planShards(plan, shardParams);
        const weights = new Float32Array(plan.totalParams).map((_, i) => i / 7);
        const hashOf = (start: number, size: number) =>
          createHash("sha256")
            .update(new Uint8Array(weights.buffer, start * 4, size * 4))
            .digest("hex");
        const results = shards.map((s) =>
          digestShard(
            plan,
            s,
            weights.subarray(s.start, s.start + s.length),
            objectKeys.shard("r", 3, s.index),
          ),
        );
        const cut = cutBlocks(plan, shards).map((index) => {
          const { start, size } = plan.blocks[index] as { start: number; size: number };
          return { index, start, size, sha256: hashOf(start, size) };
        });
        const manifest = buildManifest("r", 3, plan, results, cut);
        expect(shardSpecsOf(manifest, plan)).toEqual(shards);
        expect(manifest.blocks.map((b) => b.index)).toEqual(plan.blocks.map((_, i) => i));
        for (const block of manifest.blocks) expect(block.sha256).toBe(hashOf(block.start, block.size));
      }),
      { numRuns: 30 },
    );
  });

  it("refuses a manifest that lacks a cut block's digest", () => {
    const plan = planOf([
      { rows: 10, cols: 10 },
      { rows: 30, cols: 10 },
    ]);
    const shards = planShards(plan, 100);
    expect(cutBlocks(plan, shards)).toEqual([1]);
    const results = shards.map((s) =>
      digestShard(plan, s, new Float32Array(s.length), objectKeys.shard("r", 1, s.index)),
    );
    expect(() => buildManifest("r", 1, plan, results)).toThrow(/block digests; the plan has 2/);
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

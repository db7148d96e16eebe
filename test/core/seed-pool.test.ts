import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildPlan,
  decodeSeedPairs,
  encodeSeedPairs,
  InvalidArgumentError,
  LengthMismatchError,
  NonFiniteError,
  PlanError,
  parsePlan,
  reconstruct,
  seedPoolPlan,
} from "../../core/index.ts";
import { compileKernels, Kernels, runReconstruction } from "../../core/kernels/runtime.mjs";
import { seedKey } from "../../core/philox.ts";
import { reconstructionItems } from "../../core/projection.ts";
import { gaussianEntry, referenceEstimate } from "../../core/reference.ts";

const runPlan = buildPlan(
  [
    { name: "wte", shape: [300, 40] },
    { name: "ln", shape: [40] },
    { name: "head", shape: [40, 77] },
  ],
  { totalK: 64 },
);
const poolSeed = 0x0123456789abcdefn;
const hex = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

/** Σ_s c_s z_s into zeros (scale −1 leaves exactly the estimate, rounded to float32). */
function combination(plan: ReturnType<typeof seedPoolPlan>, c: Float32Array): Float32Array {
  const out = new Float32Array(plan.totalParams);
  reconstruct(out, c, poolSeed, plan, "gaussian", -1);
  return out;
}

describe("seedPoolPlan", () => {
  it("is one valid block over every parameter with k = K, keeping the run's tensors", () => {
    const pool = seedPoolPlan(runPlan, 1024);
    expect(parsePlan(JSON.parse(JSON.stringify(pool)))).toEqual(pool);
    expect(pool.blocks).toEqual([
      { start: 0, size: runPlan.totalParams, k: 1024, tensors: ["wte", "ln", "head"] },
    ]);
    expect(pool.tensors).toEqual(runPlan.tensors);
    expect(pool.totalK).toBe(1024);
  });

  it("refuses a pool size that is not a positive integer or exceeds the parameter count", () => {
    for (const bad of [0, -3, 1.5, Number.NaN]) {
      expect(() => seedPoolPlan(runPlan, bad)).toThrow(InvalidArgumentError);
    }
    expect(() => seedPoolPlan(runPlan, runPlan.totalParams + 1)).toThrow(/at most one seed per parameter/);
  });

  it("refuses a model too large for one block (element indices are 32-bit counter words)", () => {
    const huge = {
      ...runPlan,
      totalParams: 2 ** 32,
      tensors: [{ name: "w", shape: [2 ** 16, 2 ** 16], offset: 0 }],
    };
    expect(() => seedPoolPlan(huge, 1024)).toThrow(PlanError);
    expect(() => seedPoolPlan(huge, 1024)).toThrow(/would hold 4294967296 parameters; expected ≤ 4294967280/);
  });

  it("makes direction z_s basis s of block 0: entry j is gaussianEntry(poolSeed, s, j)", () => {
    const pool = seedPoolPlan(runPlan, 4096);
    const key = seedKey(poolSeed);
    for (const s of [0, 1, 4095]) {
      const c = new Float32Array(pool.totalK);
      c[s] = 1;
      const z = combination(pool, c);
      for (const j of [0, 1, 15, 16, 12039, pool.totalParams - 1]) {
        expect(z[j]).toBe(gaussianEntry({ key, block: 0 }, s, j));
      }
    }
  });
});

describe("sparse gaussian reconstruction on the pool plan", () => {
  it("costs one basis per non-zero coefficient: the kernel is handed only the non-zero k", () => {
    const pool = seedPoolPlan(runPlan, 8192);
    const c = new Float32Array(pool.totalK);
    c[17] = 0.5;
    c[8000] = -2;
    c[300] = -0; // negative zero is zero too
    const kernels = new Kernels(compileKernels());
    const visited: number[][] = [];
    const exports = kernels.exports;
    kernels.exports = {
      ...exports,
      gaussianReconstruct: (...args: number[]) => {
        const [, , , gammaAt, basesAt, count] = args as [number, number, number, number, number, number];
        visited.push([...new Int32Array(kernels.memory.buffer, basesAt, count)]);
        expect([...kernels.f32(gammaAt, count)]).toEqual([0.5, -2]);
        return exports.gaussianReconstruct(...args);
      },
    };
    const weights = Float32Array.from({ length: pool.totalParams }, (_, j) => Math.fround(Math.cos(j)));
    const expected = weights.slice();
    reconstruct(expected, c, poolSeed, pool, "gaussian", 0.75);
    const args = { plan: pool, seed: poolSeed, family: "gaussian" as const, coefficients: c, scale: 0.75 };
    const items = reconstructionItems({ ...args, offset: 0, weights }, [
      { blockIndex: 0, block: pool.blocks[0] as never, j0: 0, at: 0, length: pool.totalParams },
    ]);
    runReconstruction(kernels, items, c, weights, 0.75);
    expect(visited.length).toBeGreaterThan(0);
    expect(visited.every((bases) => bases.join() === "17,8000")).toBe(true);
    expect(hex(weights)).toBe(hex(expected));
  });

  it("works for one block of 2^20 parameters with K = 2^20 and matches the reference", () => {
    const big = buildPlan([{ name: "w", shape: [1024, 1024] }], { totalK: 1 });
    const pool = seedPoolPlan(big, big.totalParams);
    const c = new Float32Array(pool.totalK);
    c[0] = 1.25;
    c[123457] = -0.5;
    c[pool.totalK - 1] = 3;
    const z = combination(pool, c);
    const stream = { key: seedKey(poolSeed), block: 0 };
    for (const j of [0, 7, 65536, 999_999, pool.totalParams - 1]) {
      expect(z[j]).toBe(Math.fround(referenceEstimate("gaussian", stream, c, j)));
    }
  });
});

describe("seed pairs (the fedkseed upload body)", () => {
  const pair = fc.record({
    index: fc.integer({ min: 0, max: 1023 }),
    gradient: fc.float({ noNaN: true, noDefaultInfinity: true }),
  });

  it("round-trip as 8 little-endian bytes each, in step order", () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 40 }), (pairs) => {
        const bytes = encodeSeedPairs(pairs, 1024);
        expect(bytes.byteLength).toBe(8 * pairs.length);
        expect(decodeSeedPairs(bytes, 1024)).toEqual(pairs);
      }),
    );
    const bytes = encodeSeedPairs([{ index: 258, gradient: -1 }], 1024);
    expect(Buffer.from(bytes).toString("hex")).toBe("02010000000080bf");
  });

  it("refuse an index outside the pool, a non-finite gradient and a ragged body", () => {
    expect(() => encodeSeedPairs([{ index: 1024, gradient: 1 }], 1024)).toThrow(
      /expected an integer in \[0, 1024\)/,
    );
    expect(() => encodeSeedPairs([{ index: 0, gradient: 1e39 }], 1024)).toThrow(NonFiniteError);
    expect(() => decodeSeedPairs(new Uint8Array(12), 1024)).toThrow(LengthMismatchError);
    const far = encodeSeedPairs([{ index: 1023, gradient: 1 }], 1024);
    expect(() => decodeSeedPairs(far, 1000)).toThrow(/seed index 1023; expected < 1000/);
    const nan = new Uint8Array(8);
    new DataView(nan.buffer).setFloat32(4, Number.NaN, true);
    expect(() => decodeSeedPairs(nan, 1024)).toThrow(NonFiniteError);
  });
});

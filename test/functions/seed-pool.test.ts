// FedKSeed on the server: the pool seed a run hands out, the pool plan its directions live in, and how an upload's
// (seed index, gradient) pairs become the dense coefficients core aggregates.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildPlan } from "../../core/plan.ts";
import { reconstruct } from "../../core/projection.ts";
import { deriveRoundSeed, seedFromHex, seedToHex } from "../../core/seed.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";
import { BadRequest, PayloadTooLarge } from "../../functions/errors.ts";
import { MAX_SEED_PAIRS } from "../../functions/rounds/run-config.ts";
import { denseFromSeedPairs, poolSeedOf } from "../../functions/rounds/seed-pool.ts";
import { seedPairsBody as pairs } from "../support/seed-pairs.ts";

const plan = buildPlan(
  [
    { name: "a", shape: [10, 6] },
    { name: "b", shape: [6] },
    { name: "c", shape: [6, 9] },
  ],
  { totalK: 9 },
);

const refusal = (run: () => unknown) => {
  try {
    run();
  } catch (error) {
    return error as BadRequest;
  }
  throw new Error("accepted");
};

describe("seed pool plan", () => {
  it("is one block over every parameter with k = K, keeping the run's tensors", () => {
    const pool = seedPoolPlan(plan, 5);
    expect(pool).toMatchObject({ totalParams: plan.totalParams, totalK: 5, tensors: plan.tensors });
    expect(pool.blocks).toEqual([{ start: 0, size: plan.totalParams, k: 5, tensors: ["a", "b", "c"] }]);
    expect(() => seedPoolPlan(plan, plan.totalParams + 1)).toThrow(/seed pool size/);
  });

  it("makes direction s of the pool the reconstruction of a one-hot coefficient", () => {
    const pool = seedPoolPlan(plan, 4);
    const seed = seedFromHex(poolSeedOf("salt"));
    const sum = new Float32Array(plan.totalParams);
    reconstruct(sum, Float32Array.of(0.5, 0, -2, 0), seed, pool, "gaussian", -1);
    const z0 = new Float32Array(plan.totalParams);
    reconstruct(z0, Float32Array.of(1, 0, 0, 0), seed, pool, "gaussian", -1);
    const z2 = new Float32Array(plan.totalParams);
    reconstruct(z2, Float32Array.of(0, 0, 1, 0), seed, pool, "gaussian", -1);
    for (let j = 0; j < plan.totalParams; j++) {
      expect(sum[j]).toBeCloseTo(0.5 * (z0[j] as number) - 2 * (z2[j] as number), 5);
    }
  });
});

describe("pool seed", () => {
  it("is fixed per salt, differs between runs and from every early round seed, and is not the salt", () => {
    expect(poolSeedOf("salt-a")).toBe(poolSeedOf("salt-a"));
    expect(poolSeedOf("salt-a")).not.toBe(poolSeedOf("salt-b"));
    expect(poolSeedOf("salt-a")).toMatch(/^[0-9a-f]{16}$/);
    const rounds = Array.from({ length: 100 }, (_, r) => seedToHex(deriveRoundSeed("salt-a", r)));
    expect(rounds).not.toContain(poolSeedOf("salt-a"));
    expect("salt-a".includes(poolSeedOf("salt-a"))).toBe(false);
  });
});

describe("seed pairs upload", () => {
  it("sums each index's gradients in float64 in pair order, then rounds once", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.nat(6), fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 })),
          {
            minLength: 1,
            maxLength: 40,
          },
        ),
        (list) => {
          const expected = new Float64Array(7);
          for (const [index, g] of list) expected[index] = (expected[index] as number) + Math.fround(g);
          expect(denseFromSeedPairs(pairs(list), 7)).toEqual(Float32Array.from(expected));
        },
      ),
    );
  });

  it("reads a pair split across an unaligned buffer", () => {
    const bytes = new Uint8Array(17);
    bytes.set(pairs([[2, 1.5]]), 1);
    expect(denseFromSeedPairs(bytes.subarray(1, 9), 3)).toEqual(Float32Array.of(0, 0, 1.5));
  });

  it.each([
    ["an index ≥ K", pairs([[7, 1]]), "seed_index_out_of_range", /seed index 7; expected < 7/],
    ["NaN", pairs([[1, Number.NaN]]), "non_finite", /pair 0 has gradient NaN/],
    [
      "Infinity",
      pairs([
        [0, 1],
        [1, Number.POSITIVE_INFINITY],
      ]),
      "non_finite",
      /pair 1/,
    ],
    ["a length not a multiple of 8", pairs([[1, 1]]).subarray(0, 12 - 4 - 1), "wrong_length", /7 bytes/],
    ["an empty body", new Uint8Array(0), "wrong_length", /0 bytes/],
    [
      "sums beyond float32",
      pairs([
        [3, 3e38],
        [3, 3e38],
      ]),
      "non_finite",
      /seed index 3 sum/,
    ],
  ])("refuses %s", (_, body, code, message) => {
    const error = refusal(() => denseFromSeedPairs(body, 7));
    expect(error).toBeInstanceOf(BadRequest);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it("refuses more than the maximum pairs as too large", () => {
    const body = new Uint8Array((MAX_SEED_PAIRS + 1) * 8);
    expect(refusal(() => denseFromSeedPairs(body, 7))).toBeInstanceOf(PayloadTooLarge);
    expect(denseFromSeedPairs(new Uint8Array(MAX_SEED_PAIRS * 8), 7)).toEqual(new Float32Array(7));
  });
});

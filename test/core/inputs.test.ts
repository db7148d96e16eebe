import { describe, expect, it } from "vitest";
import {
  aggregate,
  buildPlan,
  CorePool,
  deriveRoundSeed,
  InvalidArgumentError,
  LengthMismatchError,
  NonFiniteError,
  project,
  reconstruct,
  reconstructRange,
  seedFromHex,
  seedToHex,
  UnknownFamilyError,
} from "../../core/index.ts";

// Bad input to the public API: a typed error whose message says what was expected, and nothing written.
const plan = buildPlan(
  [
    { name: "w", shape: [40] },
    { name: "b", shape: [8] },
  ],
  { totalK: 12 },
);
const seed = 42n;
const delta = new Float32Array(plan.totalParams).fill(0.5);
const coefficients = project(delta, seed, plan, "gaussian");

describe("projection and reconstruction inputs", () => {
  it("rejects a delta or weights of the wrong length", () => {
    expect(() => project(new Float32Array(47), seed, plan, "gaussian")).toThrow(LengthMismatchError);
    expect(() => project(new Float32Array(47), seed, plan, "gaussian")).toThrow(
      "delta has length 47; expected 48",
    );
    expect(() => reconstruct(new Float32Array(49), coefficients, seed, plan, "gaussian", 1)).toThrow(
      "weights has length 49; expected 48",
    );
    expect(() => reconstructRange(new Float32Array(10), 40, coefficients, seed, plan, "gaussian", 1)).toThrow(
      "range [40, 50) is outside the model; expected within [0, 48)",
    );
  });

  it("rejects coefficients of the wrong length or with non-finite values, leaving weights untouched", () => {
    const weights = new Float32Array(plan.totalParams).fill(1);
    expect(() => reconstruct(weights, coefficients.subarray(1), seed, plan, "sketch", 1)).toThrow(
      "coefficients has length 11; expected 12",
    );
    const bad = coefficients.slice();
    bad[7] = Number.POSITIVE_INFINITY;
    expect(() => reconstruct(weights, bad, seed, plan, "sketch", 1)).toThrow(NonFiniteError);
    expect(() => reconstruct(weights, bad, seed, plan, "sketch", 1)).toThrow("coefficients[7] is Infinity");
    expect(weights.every((w) => w === 1)).toBe(true);
    const nan = delta.slice();
    nan[3] = Number.NaN;
    expect(() => project(nan, seed, plan, "rademacher")).toThrow("delta[3] is NaN; expected a finite number");
    expect(() => reconstruct(weights, coefficients, seed, plan, "sketch", Number.NaN)).toThrow(
      "scale is NaN",
    );
  });

  it("rejects an unknown family and an out-of-range seed", () => {
    expect(() => project(delta, seed, plan, "hadamard" as never)).toThrow(UnknownFamilyError);
    expect(() => project(delta, seed, plan, "hadamard" as never)).toThrow(
      'basis family "hadamard" is unknown; expected one of gaussian, rademacher, sketch',
    );
    expect(() => project(delta, 1n << 64n, plan, "sketch")).toThrow(InvalidArgumentError);
  });

  it("rejects the same bad input in the worker pool before any worker runs", async () => {
    const pool = new CorePool(2);
    try {
      await expect(pool.project(new Float32Array(3), seed, plan, "gaussian")).rejects.toThrow(
        LengthMismatchError,
      );
      await expect(
        pool.reconstruct(
          new Float32Array(48),
          new Float32Array(12).fill(Number.NaN),
          seed,
          plan,
          "gaussian",
          1,
        ),
      ).rejects.toThrow(NonFiniteError);
    } finally {
      await pool.close();
    }
  });
});

describe("aggregation", () => {
  const f = Math.fround;
  const upload = (clientId: string, examples: number, values: number[]) => ({
    clientId,
    examples,
    coefficients: Float32Array.from(values),
  });

  it("is the example-weighted mean, and the same bytes in any arrival order", () => {
    const uploads = [upload("b", 3, [1, 0.1]), upload("a", 1, [5, 0.3]), upload("c", 4, [-1, 0.7])];
    const mean = aggregate(uploads, "examples");
    expect([...mean]).toEqual([
      Math.fround((3 * 1 + 5 - 4) / 8),
      Math.fround((f(0.3) + 3 * f(0.1) + 4 * f(0.7)) / 8),
    ]);
    const bytes = (a: Float32Array) => Buffer.from(a.buffer).toString("hex");
    expect(bytes(aggregate([...uploads].reverse(), "examples"))).toBe(bytes(mean));
    expect([...aggregate(uploads, "equal")]).toEqual([
      Math.fround(5 / 3),
      Math.fround((f(0.3) + f(0.1) + f(0.7)) / 3),
    ]);
  });

  it("rejects mismatched lengths, duplicates, bad counts and non-finite coefficients", () => {
    expect(() => aggregate([upload("a", 1, [1, 2]), upload("b", 1, [1])], "equal")).toThrow(
      'coefficients of client "b" has length 1; expected 2',
    );
    expect(() => aggregate([upload("a", 1, [1]), upload("a", 2, [1])], "equal")).toThrow(/appears twice/);
    expect(() => aggregate([upload("a", 0, [1])], "examples")).toThrow(
      /reports 0 examples; expected a positive integer/,
    );
    expect(() => aggregate([upload("a", 1, [Number.NaN])], "equal")).toThrow(NonFiniteError);
    expect(() => aggregate([], "equal")).toThrow(/expected at least one/);
    expect(() => aggregate([upload("a", 1, [1])], "median" as never)).toThrow(
      /expected "examples" or "equal"/,
    );
  });
});

describe("round seeds", () => {
  it("derive deterministically from salt and round, and round-trip through 16 hex digits", () => {
    const s = deriveRoundSeed("run-secret", 7);
    expect(deriveRoundSeed("run-secret", 7)).toBe(s);
    expect(deriveRoundSeed("run-secret", 8)).not.toBe(s);
    expect(seedFromHex(seedToHex(s))).toBe(s);
    expect(seedToHex(255n)).toBe("00000000000000ff");
    expect(() => seedFromHex("12345")).toThrow(/expected 16 lowercase hex digits/);
    expect(() => deriveRoundSeed("", 1)).toThrow(/expected the run's secret salt/);
  });
});

import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  aggregate,
  buildPlan,
  CorePool,
  FAMILIES,
  type Family,
  project,
  reconstruct,
  reconstructRange,
} from "../../core/index.ts";
import { goldenDigest } from "../fixtures/golden-digest.ts";

// Three blocks of unequal size (two tensors pack into one), K split across them; sizes not multiples of 16.
const plan = buildPlan(
  [
    { name: "a", shape: [1003, 3] },
    { name: "b", shape: [517] },
    { name: "c", shape: [611] },
    { name: "d", shape: [1501, 2] },
  ],
  { totalK: 200, targetBlockSize: 1500 },
);
const seed = 0xfeedfacecafebeefn;
const delta = Float32Array.from({ length: plan.totalParams }, (_, j) => Math.fround(Math.sin(j) / 16));
const base = Float32Array.from({ length: plan.totalParams }, (_, j) =>
  Math.fround(j / plan.totalParams - 0.5),
);
const hex = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

const pools = [1, 2, 4].map((threads) => new CorePool(threads));
afterAll(() => Promise.all(pools.map((p) => p.close())));

describe.each(FAMILIES)("%s is deterministic", (family: Family) => {
  const coefficients = project(delta, seed, plan, family);
  const whole = base.slice();
  reconstruct(whole, coefficients, seed, plan, family, 0.25);

  it("projects to the same bytes with 1, 2 and 4 worker threads", async () => {
    for (const pool of pools)
      expect(hex(await pool.project(delta, seed, plan, family))).toBe(hex(coefficients));
  });

  it("reconstructs the same bytes with 1, 2 and 4 worker threads", async () => {
    for (const pool of pools) {
      const weights = base.slice();
      await pool.reconstruct(weights, coefficients, seed, plan, family, 0.25);
      expect(hex(weights)).toBe(hex(whole));
    }
  });

  it("gives the same bytes when calls overlap on one pool", async () => {
    const pool = pools[1] as CorePool;
    const [a, b] = [base.slice(), base.slice()];
    const [p, q] = await Promise.all([
      pool.project(delta, seed, plan, family),
      pool.project(delta, seed, plan, family),
      pool.reconstruct(a, coefficients, seed, plan, family, 0.25),
      pool.reconstruct(b, coefficients, seed, plan, family, 0.25),
    ]);
    expect([hex(p as Float32Array), hex(q as Float32Array)]).toEqual([hex(coefficients), hex(coefficients)]);
    expect([hex(a), hex(b)]).toEqual([hex(whole), hex(whole)]);
  });

  it("reconstructs the same bytes whole or in any pieces", () => {
    const cuts = fc.uniqueArray(fc.integer({ min: 1, max: plan.totalParams - 1 }), { maxLength: 12 });
    fc.assert(
      fc.property(cuts, (points) => {
        const bounds = [0, ...points.sort((x, y) => x - y), plan.totalParams];
        const weights = base.slice();
        for (let i = 0; i + 1 < bounds.length; i++) {
          const from = bounds[i] as number;
          reconstructRange(
            weights.subarray(from, bounds[i + 1]),
            from,
            coefficients,
            seed,
            plan,
            family,
            0.25,
          );
        }
        expect(hex(weights)).toBe(hex(whole));
      }),
      { numRuns: 40 },
    );
  });

  it("reconstructs linearly: R(aggregate) matches the weighted mean of each client's R within rounding", () => {
    const clients = [3, 5, 11].map((examples, i) => ({
      clientId: `client-${i}`,
      examples,
      coefficients: project(
        delta.map((x, j) => x * Math.cos(i + j / 100)),
        seed,
        plan,
        family,
      ),
    }));
    const totalExamples = clients.reduce((s, c) => s + c.examples, 0);
    const estimateOf = (coefficients: Float32Array) => {
      const out = new Float32Array(plan.totalParams);
      reconstruct(out, coefficients, seed, plan, family, -1);
      return out;
    };
    const ofAggregate = estimateOf(aggregate(clients, "examples"));
    const perClient = clients.map((c) => estimateOf(c.coefficients));
    // Each estimate entry is Σ_k γ_k·v_kj with |v| ≤ 5.8 (the largest Box–Muller radius from 24-bit uniforms);
    // float32 rounding of γ, of ḡ and of each result costs at most a few ulps of Σ_k|γ_k|·5.8.
    const magnitude = clients.reduce(
      (s, c) => s + (c.examples / totalExamples) * c.coefficients.reduce((t, g) => t + Math.abs(g), 0),
      0,
    );
    const bound = 4 * 2 ** -24 * 5.8 * magnitude;
    let worst = 0;
    for (let j = 0; j < plan.totalParams; j++) {
      const mean = clients.reduce(
        (s, c, i) => s + (c.examples / totalExamples) * (perClient[i]?.[j] as number),
        0,
      );
      worst = Math.max(worst, Math.abs((ofAggregate[j] as number) - mean));
    }
    expect(worst).toBeLessThanOrEqual(bound);
  });
});

describe("golden digest", () => {
  // Pinned: a change here means every deployed client and server would disagree about the model bytes.
  const GOLDEN = "5149aec606ca4705249bc7b2d071f7b28c713ba435055c6e5fd3074de2d314b8";

  it("is the same in a fresh process and pinned across versions", () => {
    const script = fileURLToPath(new URL("../fixtures/golden-digest.ts", import.meta.url));
    const fresh = execFileSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8" });
    expect(fresh).toBe(goldenDigest());
    expect(fresh).toBe(GOLDEN);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assertPlanMatches, buildPlan, PlanError, parsePlan, type TensorSpec } from "../../core/index.ts";

const tensors: TensorSpec[] = [
  { name: "wte.weight", shape: [500, 64] },
  { name: "h.0.ln_1.weight", shape: [64] },
  { name: "h.0.ln_1.bias", shape: [64] },
  { name: "h.0.attn.c_attn.weight", shape: [64, 192] },
  { name: "h.0.attn.c_attn.bias", shape: [192] },
  { name: "h.0.mlp.c_fc.weight", shape: [64, 256] },
  { name: "ln_f.weight", shape: [64] },
];

describe("buildPlan", () => {
  it("gives large tensors their own block and packs runs of small ones up to 0.9 × the median size", () => {
    const plan = buildPlan(tensors, { totalK: 1000 });
    // Sizes 32000, 64, 64, 12288, 192, 16384, 64: median 192, target ⌊0.9·192⌋ = 172.
    expect(plan.blocks.map((b) => b.tensors)).toEqual([
      ["wte.weight"],
      ["h.0.ln_1.weight", "h.0.ln_1.bias"],
      ["h.0.attn.c_attn.weight"],
      ["h.0.attn.c_attn.bias"],
      ["h.0.mlp.c_fc.weight"],
      ["ln_f.weight"],
    ]);
    expect(plan.blocks.map((b) => b.start)).toEqual([0, 32000, 32128, 44416, 44608, 60992]);
    expect(plan.totalParams).toBe(61056);
  });

  it("splits K in proportion to block size, at least minK each", () => {
    const plan = buildPlan(tensors, { totalK: 1000, minK: 4 });
    expect(plan.blocks.map((b) => b.k)).toEqual([522, 4, 199, 4, 267, 4]);
  });

  it("holds its invariants for any tensors and budget: Σk = K, min(minK, size) ≤ k ≤ size, contiguous", () => {
    const shapes = fc.array(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }), {
      minLength: 1,
      maxLength: 30,
    });
    fc.assert(
      fc.property(
        shapes,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 8 }),
        (list, share, minK) => {
          const specs = list.map((shape, i) => ({ name: `t${i}`, shape }));
          const total = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
          const plan = buildPlan(specs, { totalK: total });
          const least = plan.blocks.reduce((s, b) => s + Math.min(minK, b.size), 0);
          const totalK = least + Math.floor(share * (total - least));
          const p = buildPlan(specs, { totalK, minK });
          expect(p.blocks.reduce((s, b) => s + b.k, 0)).toBe(totalK);
          let start = 0;
          for (const b of p.blocks) {
            expect(b.start).toBe(start);
            expect(b.k).toBeGreaterThanOrEqual(Math.min(minK, b.size));
            expect(b.k).toBeLessThanOrEqual(b.size);
            start += b.size;
          }
          expect(parsePlan(JSON.parse(JSON.stringify(p)))).toEqual(p);
          expect(buildPlan(specs, { totalK, minK })).toEqual(p);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("rejects budgets it cannot honour and malformed tensors, saying what was expected", () => {
    expect(() => buildPlan(tensors, { totalK: 10, minK: 4 })).toThrow(PlanError);
    expect(() => buildPlan(tensors, { totalK: 10, minK: 4 })).toThrow(/below the 24 coefficients/);
    expect(() => buildPlan(tensors, { totalK: 61057 })).toThrow(/expected at most one per parameter/);
    expect(() => buildPlan([{ name: "x", shape: [3, 0] }], { totalK: 1 })).toThrow(
      /expected an array of positive integers/,
    );
    expect(() => buildPlan([...tensors, tensors[0] as TensorSpec], { totalK: 9 })).toThrow(/appears twice/);
    expect(() => buildPlan([], { totalK: 1 })).toThrow(/expected at least one tensor/);
  });
});

describe("parsePlan", () => {
  const good = JSON.parse(JSON.stringify(buildPlan(tensors, { totalK: 100 })));
  type EditablePlan = {
    version: number;
    totalK: number;
    blocks: [unknown, { k: number }, { start: number }, ...unknown[]];
    tensors: [unknown, { offset: number }, ...unknown[]];
  };
  const tamper = (edit: (p: EditablePlan) => void) => {
    const copy = structuredClone(good);
    edit(copy);
    return () => parsePlan(copy);
  };

  it("rejects a block whose k exceeds its size", () => {
    expect(tamper((p) => (p.blocks[1].k = 129))).toThrow(/k is 129; expected 1 ≤ k ≤ 128/);
  });

  it("rejects plans whose parts disagree, naming the field", () => {
    expect(tamper((p) => (p.totalK = 99))).toThrow(/Σk = 100; expected totalK = 99/);
    expect(tamper((p) => (p.blocks[2].start = 5))).toThrow(/plan.blocks\[2\].start is 5; expected 32128/);
    expect(tamper((p) => (p.tensors[1].offset = 1))).toThrow(/offset is 1; expected 32000/);
    expect(tamper((p) => (p.version = 2))).toThrow(/plan.version is 2; expected 1/);
    expect(tamper((p) => p.blocks.pop())).toThrow(/cover 60992 parameters; expected 61056/);
    expect(() => parsePlan("plan")).toThrow(PlanError);
  });

  it("checks a plan against the tensors it is used with", () => {
    const plan = parsePlan(good);
    expect(() => assertPlanMatches(plan, tensors)).not.toThrow();
    const renamed = tensors.map((t, i) => (i === 3 ? { ...t, name: "h.0.attn.q.weight" } : t));
    expect(() => assertPlanMatches(plan, renamed)).toThrow(
      /tensor #3 is "h.0.attn.q.weight" \[64,192\]; the plan expects "h.0.attn.c_attn.weight"/,
    );
    expect(() => assertPlanMatches(plan, tensors.slice(1))).toThrow(/got 6 tensors; the plan describes 7/);
  });
});

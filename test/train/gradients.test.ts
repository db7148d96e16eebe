import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clipByGlobalNorm, GradientAccumulator, globalNorm } from "../../client/train/gradients.ts";

const gradsArb = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 4 }),
  fc
    .array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 8 })
    .map((a) => Float32Array.from(a)),
  { minKeys: 1, maxKeys: 4 },
);

describe("global norm clipping", () => {
  it("measures the norm over all tensors together", () => {
    expect(globalNorm({ a: Float32Array.of(3), b: Float32Array.of(0, 4) })).toBe(5);
  });

  it("scales every gradient by one factor down to maxNorm, and leaves small ones alone", () => {
    fc.assert(
      fc.property(gradsArb, fc.double({ min: 0.01, max: 50, noNaN: true }), (grads, maxNorm) => {
        const before = structuredClone(grads);
        const norm = clipByGlobalNorm(grads, maxNorm);
        expect(norm).toBeCloseTo(globalNorm(before), 3);
        expect(globalNorm(grads)).toBeLessThanOrEqual(maxNorm * (1 + 1e-5));
        const scale = norm > maxNorm ? maxNorm / norm : 1;
        for (const [name, g] of Object.entries(grads)) {
          g.forEach((x, i) => {
            expect(x).toBeCloseTo(((before[name] as Float32Array)[i] as number) * scale, 4);
          });
        }
      }),
    );
  });

  it("refuses non-finite gradients", () => {
    expect(() => clipByGlobalNorm({ a: Float32Array.of(1, Number.NaN) }, 1)).toThrow(/gradient norm is NaN/);
    expect(() => clipByGlobalNorm({ a: Float32Array.of(Number.POSITIVE_INFINITY) }, 1)).toThrow(/Infinity/);
  });
});

describe("gradient accumulation", () => {
  it("returns the weighted mean and starts over", () => {
    const acc = new GradientAccumulator();
    acc.add({ w: Float32Array.of(1, 2) }, 3);
    acc.add({ w: Float32Array.of(5, -2) }, 1);
    const first = acc.take();
    expect(first).toEqual({ w: Float32Array.of(2, 1) });
    expect(() => acc.take()).toThrow(/no gradients with positive weight/);
    acc.add({ w: Float32Array.of(4, 4) });
    const second = acc.take();
    expect(second).toEqual({ w: Float32Array.of(4, 4) });
    expect(second.w).toBe(first.w); // the same memory, step after step
    acc.add({ w: Float32Array.of(1, 2, 3) });
    expect(acc.take()).toEqual({ w: Float32Array.of(1, 2, 3) });
  });

  it("rejects gradients that do not match the first ones", () => {
    const acc = new GradientAccumulator();
    acc.add({ w: Float32Array.of(1) });
    expect(() => acc.add({ w: Float32Array.of(1, 2) })).toThrow(/has 2 values, expected 1/);
    expect(() => acc.add({ w: Float32Array.of(1) }, -1)).toThrow(/weight must be finite and ≥ 0/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { boxMuller, cosSinOfTurn24, logOfUnit24 } from "../../core/normal.ts";

// Our float32 logarithm and sine/cosine replace Math.log/Math.cos for determinism; they must still be accurate
// to float32 precision, or the Gaussian bases would not be Gaussian.
describe("float32 transcendental functions", () => {
  it("ln(n·2^-24) is within 2 float32 ulps of the true value over the whole domain", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 24 }), (n) => {
        const exact = Math.log(n * 2 ** -24);
        expect(Math.abs(logOfUnit24(n) - exact)).toBeLessThanOrEqual(
          2 * 2 ** -24 * Math.max(1, Math.abs(exact)),
        );
      }),
      { numRuns: 20000 },
    );
    expect(logOfUnit24(2 ** 24)).toBe(0);
  });

  it("cos and sin of n/2^24 turns are within 2^-23 of the true values", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 24 - 1 }), (n) => {
        const theta = 2 * Math.PI * n * 2 ** -24;
        const [c, s] = cosSinOfTurn24(n);
        expect(Math.abs(c - Math.cos(theta))).toBeLessThanOrEqual(2 ** -23);
        expect(Math.abs(s - Math.sin(theta))).toBeLessThanOrEqual(2 ** -23);
      }),
      { numRuns: 20000 },
    );
  });

  it("Box–Muller pairs have the first four moments of a standard normal", () => {
    const samples: number[] = [];
    for (let i = 0; i < 50000; i++) {
      const a = Math.imul(i, 0x9e3779b1) >>> 0;
      const b = Math.imul(i ^ 0x5bd1e995, 0x85ebca6b) >>> 0;
      samples.push(...boxMuller(a, b));
    }
    const moment = (p: number) => samples.reduce((s, x) => s + x ** p, 0) / samples.length;
    expect(Math.abs(moment(1))).toBeLessThan(0.02);
    expect(Math.abs(moment(2) - 1)).toBeLessThan(0.03);
    expect(Math.abs(moment(3))).toBeLessThan(0.06);
    expect(Math.abs(moment(4) - 3)).toBeLessThan(0.15);
  });
});

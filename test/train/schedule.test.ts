import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { makeSchedule } from "../../client/train/schedule.ts";

describe("learning-rate schedules", () => {
  it("warms up linearly, then decays to minLr by totalSteps", () => {
    const cosine = makeSchedule({ kind: "cosine", peakLr: 1, warmupSteps: 4, totalSteps: 14, minLr: 0.1 });
    expect([0, 1, 2, 3].map(cosine)).toEqual([0.25, 0.5, 0.75, 1]);
    expect(cosine(4)).toBe(1);
    expect(cosine(9)).toBeCloseTo(0.55, 12); // halfway: min + (peak − min)/2
    expect(cosine(14)).toBeCloseTo(0.1, 12);
    expect(cosine(100)).toBeCloseTo(0.1, 12);
    const linear = makeSchedule({ kind: "linear", peakLr: 2, warmupSteps: 0, totalSteps: 10 });
    expect([0, 5, 10, 20].map(linear)).toEqual([2, 1, 0, 0]);
    expect(makeSchedule({ kind: "constant", lr: 0.3 })(1234)).toBe(0.3);
  });

  it("stays within [minLr, peakLr] and never rises after warmup", () => {
    const spec = fc.record({
      kind: fc.constantFrom("cosine" as const, "linear" as const),
      peakLr: fc.double({ min: 1e-6, max: 1, noNaN: true }),
      warmupSteps: fc.integer({ min: 0, max: 20 }),
      extra: fc.integer({ min: 0, max: 50 }),
      minFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(spec, ({ kind, peakLr, warmupSteps, extra, minFraction }) => {
        const minLr = peakLr * minFraction;
        const lr = makeSchedule({ kind, peakLr, warmupSteps, totalSteps: warmupSteps + extra, minLr });
        let previous = Number.POSITIVE_INFINITY;
        for (let step = 0; step < warmupSteps + extra + 5; step++) {
          const value = lr(step);
          expect(value).toBeLessThanOrEqual(peakLr * (1 + 1e-12));
          if (step >= warmupSteps) {
            expect(value).toBeGreaterThanOrEqual(minLr * (1 - 1e-12));
            expect(value).toBeLessThanOrEqual(previous * (1 + 1e-12));
            previous = value;
          }
        }
      }),
    );
  });

  it("rejects impossible settings", () => {
    expect(() => makeSchedule({ kind: "cosine", peakLr: 1, warmupSteps: 5, totalSteps: 3 })).toThrow(
      /0 ≤ warmupSteps ≤ totalSteps/,
    );
    expect(() =>
      makeSchedule({ kind: "linear", peakLr: 0.1, warmupSteps: 0, totalSteps: 3, minLr: 1 }),
    ).toThrow(/minLr 1 exceeds peakLr 0.1/);
    expect(() => makeSchedule({ kind: "constant", lr: -1 })).toThrow(/lr must be finite and ≥ 0/);
  });
});

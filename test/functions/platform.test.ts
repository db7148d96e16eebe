import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { scheduleTime } from "../../functions/platform.ts";

describe("a deadline's at() time", () => {
  it("is the deadline rounded up to a whole second: never before it, less than a second after", () => {
    expect(scheduleTime(Date.parse("2026-11-26T15:14:04.334Z"))).toBe("2026-11-26T15:14:05");
    expect(scheduleTime(Date.parse("2026-11-26T15:14:04.000Z"))).toBe("2026-11-26T15:14:04");
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4e12 }), (deadline) => {
        const at = Date.parse(`${scheduleTime(deadline)}Z`);
        expect(at).toBeGreaterThanOrEqual(deadline);
        expect(at - deadline).toBeLessThan(1000);
      }),
    );
  });
});

// The timing rule bench:aggregate records beside each core figure: a long first run is the figure itself.
import { describe, expect, it } from "vitest";
import { timeOnceIfLong } from "../../bench/machine.ts";

function counted() {
  const work = () => {
    work.calls++;
  };
  work.calls = 0;
  return work;
}

describe("timeOnceIfLong", () => {
  it("keeps a first run that reached the limit as a single timing, without repeating it", async () => {
    const work = counted();
    const timing = await timeOnceIfLong(3, 0, work);
    expect(work.calls).toBe(1);
    expect(timing.statistic).toBe("single run");
    expect(timing.seconds).toBeGreaterThanOrEqual(0);
  });

  it("treats a shorter first run as a warm-up and takes the median of the repeats after it", async () => {
    const work = counted();
    const timing = await timeOnceIfLong(3, Number.POSITIVE_INFINITY, work);
    expect(work.calls).toBe(4);
    expect(timing.statistic).toBe("median of 3 after a warm-up run");
  });
});

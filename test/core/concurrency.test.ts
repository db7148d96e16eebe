import { describe, expect, it } from "vitest";
import { ApiError } from "../../client/api/errors.ts";
import { EXIT, exitCodeOf } from "../../client/cli/output.ts";
import { forEachLimited } from "../../core/concurrency.ts";

/** A task whose runs finish only when the test releases them, recording how many overlap. */
function gated() {
  const pending: { index: number; settle: (error?: Error) => void }[] = [];
  const started: number[] = [];
  let inFlight = 0;
  let peak = 0;
  const task = (index: number) =>
    new Promise<void>((resolve, reject) => {
      started.push(index);
      inFlight++;
      peak = Math.max(peak, inFlight);
      pending.push({
        index,
        settle: (error) => {
          inFlight--;
          if (error) reject(error);
          else resolve();
        },
      });
    });
  /** Lets the queue move: microtasks run until the helper has started whatever it is going to start. */
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  return { task, pending, started, peak: () => peak, tick };
}

describe("forEachLimited", () => {
  it("runs every index once with never more than `limit` in flight, starting in order", async () => {
    const g = gated();
    const done = forEachLimited(10, 3, g.task);
    await g.tick();
    expect(g.started).toEqual([0, 1, 2]);
    // Finish them out of order: each finish starts exactly one more.
    while (g.pending.length > 0) {
      const last = g.pending.pop();
      last?.settle();
      await g.tick();
    }
    await done;
    expect(g.started.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(g.peak()).toBe(3);
  });

  it("rejects with the first error, starts nothing after it, and waits for the tasks already running", async () => {
    const g = gated();
    let settled = false;
    const done = forEachLimited(10, 3, g.task).finally(() => {
      settled = true;
    });
    const outcome = done.catch((error: Error) => error);
    await g.tick();
    g.pending.find((p) => p.index === 1)?.settle(new Error("part 2 failed"));
    await g.tick();
    expect(g.started).toEqual([0, 1, 2]);
    expect(settled).toBe(false); // 0 and 2 are still running
    g.pending.find((p) => p.index === 0)?.settle();
    g.pending.find((p) => p.index === 2)?.settle();
    expect(((await outcome) as Error).message).toBe("part 2 failed");
    expect(g.started).toEqual([0, 1, 2]);
  });

  it("reports every failure when tasks already running fail too, the first one first", async () => {
    const g = gated();
    const outcome = forEachLimited(10, 3, g.task).catch((error: unknown) => error);
    await g.tick();
    const first = new Error("part 2 failed");
    const later = new Error("part 1 failed as well");
    g.pending.find((p) => p.index === 1)?.settle(first);
    await g.tick();
    g.pending.find((p) => p.index === 0)?.settle(later);
    g.pending.find((p) => p.index === 2)?.settle();
    const error = (await outcome) as AggregateError;
    expect(error).toBeInstanceOf(AggregateError);
    expect(error.errors).toEqual([first, later]);
    expect(error.message).toBe("2 of 10 tasks failed; the first: part 2 failed");
    expect(g.started).toEqual([0, 1, 2]);
  });

  it("treats a task that throws before returning a promise as a failure too", async () => {
    const started: number[] = [];
    const task = (index: number) => {
      started.push(index);
      if (index === 0) throw new Error("bad index 0");
      return Promise.resolve();
    };
    await expect(forEachLimited(5, 1, task)).rejects.toThrow("bad index 0");
    expect(started).toEqual([0]);
  });

  it("does nothing for no indices and refuses a limit below one", async () => {
    await forEachLimited(0, 4, () => Promise.reject(new Error("never called")));
    await expect(forEachLimited(3, 0, () => Promise.resolve())).rejects.toThrow(
      "limit must be a positive integer, got 0",
    );
  });

  it("exits the CLI as the first of several failures would have alone", () => {
    const refused = new ApiError(403, "storage", "the presigned URL expired");
    const together = new AggregateError([refused, new Error("socket hang up")], "2 of 4 tasks failed");
    expect(exitCodeOf(together)).toBe(EXIT.refused);
    expect(exitCodeOf(together)).toBe(exitCodeOf(refused));
  });
});

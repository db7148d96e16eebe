import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backoffDelay, GaveUpError, withBackoff } from "../../client/api/backoff.ts";

const options = { baseMs: 100, capMs: 5_000, giveUpAfterMs: 60_000 };

describe("backoff", () => {
  it("draws each delay from [0, min(cap, base·2^n)) (full jitter)", () => {
    fc.assert(
      fc.property(fc.nat(60), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
        const delay = backoffDelay(attempt, options, () => r);
        const ceiling = Math.min(options.capMs, options.baseMs * 2 ** attempt);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(ceiling);
      }),
    );
  });

  it("retries retryable failures with growing waits, announcing each, then succeeds", async () => {
    const waits: number[] = [];
    let calls = 0;
    const result = await withBackoff(
      async () => {
        if (++calls < 4) throw new Error("connection refused");
        return "ok";
      },
      () => true,
      { ...options, random: () => 0.5, sleep: async () => {}, onWait: (w) => waits.push(w.delayMs) },
    );
    expect(result).toBe("ok");
    expect(waits).toEqual([50, 100, 200]);
  });

  it("does not retry what the predicate rejects", async () => {
    let calls = 0;
    const failing = withBackoff(
      async () => {
        calls++;
        throw new Error("401");
      },
      () => false,
      { ...options, sleep: async () => {} },
    );
    await expect(failing).rejects.toThrow("401");
    expect(calls).toBe(1);
  });

  it("gives up once the time is spent, waiting no longer than it has left, keeping the last failure", async () => {
    const clock = fakeClock();
    const delays: number[] = [];
    const failing = withBackoff(
      async () => {
        throw new Error("unreachable");
      },
      () => true,
      {
        baseMs: 1000,
        capMs: 1000,
        giveUpAfterMs: 3500,
        random: () => 0.999,
        ...clock,
        onWait: (w) => delays.push(w.delayMs),
      },
    );
    const error = await gaveUp(failing);
    expect(error.cause).toEqual(new Error("unreachable"));
    expect(delays).toEqual([999, 999, 999, 503]);
    expect(clock.now()).toBe(3500);
  });

  it("counts the time the attempts take, not only the waits between them", async () => {
    const clock = fakeClock();
    let attempts = 0;
    const failing = withBackoff(
      async () => {
        attempts++;
        clock.advance(300); // e.g. a server that takes the connection and never answers, until a timeout
        throw new Error("timed out");
      },
      () => true,
      { baseMs: 100, capMs: 100, giveUpAfterMs: 1000, random: () => 0.5, ...clock },
    );
    const error = await gaveUp(failing);
    expect(error.message).toBe("gave up after 3 attempts over 1.0 s (the limit is 1 s): timed out");
    // Attempts start at 0, 350 and 700; the third fails at the limit, and no fourth starts.
    expect(attempts).toBe(3);
    expect(clock.now()).toBe(1000);
  });

  it("retries a long transfer that broke, counting the limit again from its failure", async () => {
    const clock = fakeClock();
    const log: string[] = [];
    let attempts = 0;
    const transfer = withBackoff(
      async (moved) => {
        attempts++;
        if (attempts === 1) {
          moved();
          clock.advance(660_000); // 11 minutes of bytes moving, then the connection resets
          moved();
          throw new Error("reset");
        }
        if (attempts < 4) throw new Error("refused");
        return "done";
      },
      () => true,
      {
        baseMs: 1000,
        capMs: 1000,
        giveUpAfterMs: 600_000,
        random: () => 0.5,
        ...clock,
        onWait: (w) => log.push(w.error.message),
      },
    );
    expect(await transfer).toBe("done");
    expect(log).toEqual(["reset", "refused", "refused"]);
  });

  it("gives up once the server has stayed unreachable for the limit after a long transfer broke", async () => {
    const clock = fakeClock();
    let attempts = 0;
    const failing = withBackoff(
      async (moved) => {
        if (++attempts === 1) {
          moved();
          clock.advance(660_000);
          moved();
        }
        throw new Error(attempts === 1 ? "reset" : "refused");
      },
      () => true,
      { baseMs: 1000, capMs: 1000, giveUpAfterMs: 600_000, random: () => 0.999, ...clock },
    );
    const error = await gaveUp(failing);
    expect(error.message).toBe("gave up after 602 attempts over 600.0 s (the limit is 600 s): refused");
    expect(clock.now()).toBe(1_260_000);
  });

  it("stops when its signal is aborted: a wait under way ends at once, and no attempt starts after", async () => {
    const stop = new AbortController();
    let calls = 0;
    const failing = withBackoff(
      async () => {
        calls++;
        throw new Error("unreachable");
      },
      () => true,
      // A real wait of a minute: only the abort can end it within the test's time.
      { baseMs: 60_000, capMs: 60_000, giveUpAfterMs: 600_000, random: () => 0.999, signal: stop.signal },
    );
    setTimeout(() => stop.abort(new Error("interrupted")), 20);
    await expect(failing).rejects.toThrow("interrupted");
    expect(calls).toBe(1);
    let after = 0;
    await expect(
      withBackoff(
        async () => ++after,
        () => true,
        { ...options, signal: stop.signal },
      ),
    ).rejects.toThrow("interrupted");
    expect(after).toBe(0);
  });
});

/** The GaveUpError `failing` rejects with (and that it rejects with one). */
async function gaveUp(failing: Promise<unknown>): Promise<GaveUpError> {
  const error = await failing.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(GaveUpError);
  return error as GaveUpError;
}

/** A clock that only moves when slept on or advanced, for backoff without real waits. */
function fakeClock() {
  let t = 0;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    sleep: async (ms: number) => {
      t += ms;
    },
  };
}

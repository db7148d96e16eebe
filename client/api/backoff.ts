// Polite retries: exponential backoff with "full jitter" (delay drawn uniformly from [0, min(cap, base·2^n)]),
// so many clients that lost the server at the same moment do not come back at the same moment.

export interface BackoffOptions {
  /** First delay ceiling, in milliseconds. */
  baseMs: number;
  /** Largest delay ceiling, in milliseconds. */
  capMs: number;
  /**
   * Stop retrying once this much wall-clock time (milliseconds) has passed since the first attempt began, counting
   * the attempts as well as the waits between them; Infinity retries forever. No wait runs past it, but an attempt
   * started before it runs to its own end (its timeouts bound that).
   */
  giveUpAfterMs: number;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Ends the retries when aborted (the client's Ctrl-C): no attempt starts after it, and a wait under way ends at
   * once; both reject with the signal's reason. An attempt already under way runs to its end.
   */
  signal?: AbortSignal;
  /** The clock the deadline is read on, in milliseconds; tests that fake `sleep` fake it too. */
  now?: () => number;
  /** Told before every wait, e.g. to print "server unreachable, retrying in 4 s". */
  onWait?: (wait: { attempt: number; delayMs: number; error: Error }) => void;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000, giveUpAfterMs: 10 * 60_000 };

/** The delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, options: BackoffOptions, random = Math.random): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 40));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it is aborted. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Every retry was spent; `cause` is the last failure. */
export class GaveUpError extends Error {
  override name = "GaveUpError";
}

/**
 * Runs `attempt` until it succeeds or fails with an error `retryable` rejects. Retryable failures wait with
 * backoff until the server has been unreachable for `giveUpAfterMs` since the first failing attempt began; then
 * a GaveUpError carries the last failure. `attempt` calls `moved` when data moves (a chunk of a body sent or
 * received): while it flows the server is reachable, so a long transfer that broke does not use up the limit,
 * while a server that answers and then stalls does.
 */
export async function withBackoff<T>(
  attempt: (moved: () => void) => Promise<T>,
  retryable: (error: Error) => boolean,
  options: BackoffOptions = DEFAULT_BACKOFF,
): Promise<T> {
  const wait = options.sleep ?? sleep;
  const now = options.now ?? Date.now;
  let failingSince: number | undefined;
  let flowingMs = 0;
  for (let n = 0; ; n++) {
    options.signal?.throwIfAborted();
    const started = now();
    let firstMove: number | undefined;
    let lastMove = 0;
    try {
      return await attempt(() => {
        lastMove = now();
        firstMove ??= lastMove;
      });
    } catch (error) {
      if (!(error instanceof Error) || !retryable(error)) throw error;
      failingSince ??= started;
      if (firstMove !== undefined) flowingMs += lastMove - firstMove;
      const unreachableMs = now() - failingSince - flowingMs;
      const remaining = options.giveUpAfterMs - unreachableMs;
      if (remaining <= 0) {
        throw new GaveUpError(
          `gave up after ${n + 1} attempts over ${(unreachableMs / 1000).toFixed(1)} s (the limit is ${options.giveUpAfterMs / 1000} s): ${error.message}`,
          { cause: error },
        );
      }
      const delayMs = Math.min(backoffDelay(n, options, options.random), remaining);
      options.onWait?.({ attempt: n, delayMs, error });
      await wait(delayMs, options.signal);
    }
  }
}

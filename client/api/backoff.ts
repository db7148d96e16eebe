// Polite retries: exponential backoff with "full jitter" (delay drawn uniformly from [0, min(cap, base·2^n)]),
// so many clients that lost the server at the same moment do not come back at the same moment.

export interface BackoffOptions {
  /** First delay ceiling, in milliseconds. */
  baseMs: number;
  /** Largest delay ceiling, in milliseconds. */
  capMs: number;
  /** Stop retrying once this much time has been spent waiting (milliseconds); Infinity retries forever. */
  giveUpAfterMs: number;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Told before every wait, e.g. to print "server unreachable, retrying in 4 s". */
  onWait?: (wait: { attempt: number; delayMs: number; error: Error }) => void;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000, giveUpAfterMs: 10 * 60_000 };

/** The delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, options: BackoffOptions, random = Math.random): number {
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, 40));
  return Math.floor(random() * ceiling);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Every retry was spent; `cause` is the last failure. */
export class GaveUpError extends Error {
  override name = "GaveUpError";
}

/**
 * Runs `attempt` until it succeeds or fails with an error `retryable` rejects. Retryable failures wait with
 * backoff; once the total waiting would pass `giveUpAfterMs`, a GaveUpError carries the last failure.
 */
export async function withBackoff<T>(
  attempt: () => Promise<T>,
  retryable: (error: Error) => boolean,
  options: BackoffOptions = DEFAULT_BACKOFF,
): Promise<T> {
  const wait = options.sleep ?? sleep;
  let waited = 0;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof Error) || !retryable(error)) throw error;
      const delayMs = backoffDelay(n, options, options.random);
      if (waited + delayMs > options.giveUpAfterMs) {
        throw new GaveUpError(
          `gave up after ${n + 1} attempts over ${Math.round(waited / 1000)} s: ${error.message}`,
          { cause: error },
        );
      }
      options.onWait?.({ attempt: n, delayMs, error });
      await wait(delayMs);
      waited += delayMs;
    }
  }
}

// Bounded parallelism for transfers: enough requests in flight to hide each one's latency, few enough that the
// buffers they hold stay small.

/**
 * Runs `task(i)` for every i in 0..count-1 with at most `limit` running at once, in index order. After the first
 * failure no new task starts; the returned promise waits for the tasks already running (so none is still writing
 * into the caller's buffers) and then rejects with that first error.
 */
export async function forEachLimited(
  count: number,
  limit: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (failure !== undefined) throw failure.error;
}

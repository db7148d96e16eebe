// Bounded parallelism for transfers (the client's downloads and uploads, the server's checkpoint import): enough
// requests in flight to hide each one's latency, few enough that the buffers they hold stay small.

/**
 * Runs `task(i)` for every i in 0..count-1 with at most `limit` running at once, in index order. After the first
 * failure no new task starts; the returned promise waits for the tasks already running (so none is still writing
 * into the caller's buffers) and then rejects: with the error itself when one task failed, or with an
 * AggregateError holding every failure, the first one first, when several tasks already running failed too.
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
  const failures: unknown[] = [];
  const worker = async () => {
    while (failures.length === 0 && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failures.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) {
    const first = failures[0] instanceof Error ? failures[0].message : String(failures[0]);
    throw new AggregateError(failures, `${failures.length} of ${count} tasks failed; the first: ${first}`);
  }
}

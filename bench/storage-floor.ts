// The storage floor of a shard task: what moving the same shards through the same path costs with no
// reconstruction. `threads` worker threads, as many as the shard pool runs, each take the next shard: GET the base
// shard into one buffer (CheckpointBucket.readInto), hash it as digestShard does, PUT it under a new key (putNew).
// No aggregation that reads and writes every shard through this storage can finish sooner.
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import type { Plan } from "../core/plan.ts";
import type { FloorTask } from "./storage-floor-worker.ts";

interface Reply {
  ready?: true;
  done?: number;
  error?: string;
}

async function nextReply(worker: Worker): Promise<Reply> {
  const [reply] = (await once(worker, "message")) as [Reply];
  if (reply.error !== undefined) throw new Error(`storage-floor worker: ${reply.error}`);
  return reply;
}

/** Seconds from the first GET to the last PUT, the workers already started (as the shard pool's are). */
export async function storageFloorSeconds(
  env: Record<string, string>,
  plan: Plan,
  tasks: FloorTask[],
  threads: number,
): Promise<number> {
  const workers = Array.from(
    { length: threads },
    () =>
      new Worker(new URL("./storage-floor-worker.mjs", import.meta.url), {
        env: { ...(process.env as Record<string, string>), ...env },
        workerData: { plan },
      }),
  );
  try {
    await Promise.all(workers.map(nextReply));
    const queue = [...tasks];
    const start = process.hrtime.bigint();
    await Promise.all(
      workers.map(async (worker) => {
        for (let task = queue.shift(); task; task = queue.shift()) {
          worker.postMessage(task);
          await nextReply(worker);
        }
      }),
    );
    return Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

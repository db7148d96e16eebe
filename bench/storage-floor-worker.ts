// Worker thread for the storage floor: a shard task with the reconstruction taken out. Its bucket is built from
// the environment as the shard workers' is, so the bytes take the same client, the same settings and the same path.
import { parentPort, workerData } from "node:worker_threads";
import type { Plan } from "../core/plan.ts";
import { digestShard, type ShardSpec } from "../functions/rounds/manifest.ts";
import { servicesFromEnvironment } from "../functions/services.ts";

export interface FloorTask {
  shard: ShardSpec;
  from: string;
  to: string;
}

const refuse = () => Promise.reject(new Error("storage-floor workers start nothing"));
const { bucket } = servicesFromEnvironment({ startAggregation: refuse, scheduleDeadline: refuse });
const plan = (workerData as { plan: Plan }).plan;

parentPort?.on("message", async ({ shard, from, to }: FloorTask) => {
  try {
    const values = new Float32Array(shard.length);
    const bytes = new Uint8Array(values.buffer);
    await bucket.readInto(from, bytes);
    digestShard(plan, shard, values, to);
    await bucket.putNew(to, bytes, "application/octet-stream");
    parentPort?.postMessage({ done: shard.index });
  } catch (error) {
    parentPort?.postMessage({ error: (error as Error).stack ?? String(error) });
  }
});
// The shard workers' clients are warm when measured (connection, credentials, middleware): so is this one.
await bucket.exists("storage-floor/warm-up");
parentPort?.postMessage({ ready: true });

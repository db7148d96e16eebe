// Worker thread: runs reconstruct-shard tasks, the local stand-in for Distributed Map items. Its own SDK clients
// come from the environment the pool passes in, as a Lambda's would.
import { parentPort } from "node:worker_threads";
import { reconstructShard, type ShardTask } from "../../functions/rounds/aggregation.ts";
import { servicesFromEnvironment } from "../../functions/services.ts";

const svc = servicesFromEnvironment({
  startAggregation: () => Promise.reject(new Error("shard workers do not start aggregations")),
  scheduleDeadline: () => Promise.reject(new Error("shard workers do not schedule deadlines")),
});

parentPort?.on("message", async ({ id, task }: { id: number; task: ShardTask }) => {
  try {
    parentPort?.postMessage({ id, result: await reconstructShard(svc, task) });
  } catch (error) {
    parentPort?.postMessage({
      id,
      error: (error as Error).stack ?? String(error),
      name: (error as Error).name,
    });
  }
});

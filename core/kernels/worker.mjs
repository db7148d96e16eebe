// A kernel worker: one WebAssembly instance, running the work items core/pool.ts sends it. Buffers arrive as
// SharedArrayBuffer-backed views, so results land in place without copies through messages.
import { parentPort, workerData } from "node:worker_threads";
import { Kernels, runProjection, runReconstruction } from "./runtime.mjs";

const kernels = new Kernels(workerData.module);
const port = /** @type {import("node:worker_threads").MessagePort} */ (parentPort);

port.on("message", (task) => {
  try {
    if (task.op === "reconstruct") {
      runReconstruction(kernels, task.items, task.coefficients, task.weights, task.scale);
    } else {
      runProjection(kernels, task.items, task.delta, task.out);
    }
    port.postMessage({ id: task.id });
  } catch (error) {
    port.postMessage({
      id: task.id,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    });
  }
});

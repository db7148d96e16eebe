// A fixed pool of worker threads running shard tasks, each worker one task at a time.
import { Worker } from "node:worker_threads";
import type { ShardTask } from "../../functions/rounds/aggregation.ts";
import type { ShardOutcome } from "../../functions/rounds/manifest.ts";

interface Pending {
  task: ShardTask;
  resolve: (result: ShardOutcome) => void;
  reject: (error: Error) => void;
}

interface WorkerReply {
  id: number;
  result?: ShardOutcome;
  error?: string;
  name?: string;
}

export class ShardPool {
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private readonly workers: Worker[] = [];
  private nextId = 0;

  constructor(threads: number, env: Record<string, string>) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(new URL("./shard-worker-entry.mjs", import.meta.url), { env });
      worker.on("message", ({ id, result, error, name }: WorkerReply) => {
        const pending = this.inFlight.get(id);
        this.inFlight.delete(id);
        if (error !== undefined) {
          // The name travels as Lambda's errorType does: the orchestrator decides on it whether to retry.
          const failure = new Error(`shard ${pending?.task.shard.index}: ${error}`);
          failure.name = name ?? failure.name;
          pending?.reject(failure);
        } else if (result) pending?.resolve(result);
        this.release(worker);
      });
      worker.on("error", (error) => {
        for (const pending of this.inFlight.values()) pending.reject(error);
        this.inFlight.clear();
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  run(task: ShardTask): Promise<ShardOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ task, resolve, reject });
      this.dispatch();
    });
  }

  private release(worker: Worker) {
    this.idle.push(worker);
    this.dispatch();
  }

  private dispatch() {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop() as Worker;
      const pending = this.queue.shift() as Pending;
      const id = this.nextId++;
      this.inFlight.set(id, pending);
      worker.postMessage({ id, task: pending.task });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

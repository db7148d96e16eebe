/**
 * The same projection and reconstruction as projection.ts, spread over worker threads. Reconstruction splits
 * the element range evenly; projection splits each block's coefficient range (sketch blocks stay whole) and
 * balances pieces by cost. Every element and every coefficient is computed by exactly the code the single-thread
 * path runs, in the same order, so the bytes are identical for any thread count.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { assertLength, InvalidArgumentError } from "./errors.ts";
import type { ProjectItem, ReconstructItem } from "./kernels/runtime.mjs";
import type { Plan } from "./plan.ts";
import {
  blockSlices,
  type Family,
  kernelModule,
  projectionItems,
  reconstructionItems,
  validateProjection,
  validateReconstruction,
} from "./projection.ts";

type Task =
  | {
      op: "reconstruct";
      items: ReconstructItem[];
      coefficients: Float32Array;
      weights: Float32Array;
      scale: number;
    }
  | { op: "project"; items: ProjectItem[]; delta: Float32Array; out: Float32Array };

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
}

/** A Float32Array on a SharedArrayBuffer: pass these to the pool to avoid a copy in and out. */
export function sharedFloat32Array(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

function shared(array: Float32Array): Float32Array {
  if (array.buffer instanceof SharedArrayBuffer) return array;
  const copy = sharedFloat32Array(array.length);
  copy.set(array);
  return copy;
}

/** Element-aligned cut points splitting [0, length) into `parts` nearly equal ranges (multiples of 16). */
function cutPoints(length: number, parts: number): number[] {
  const cuts = [0];
  for (let p = 1; p < parts; p++) cuts.push(Math.min(length, Math.round((length * p) / parts / 16) * 16));
  cuts.push(length);
  return cuts;
}

/** Longest-processing-time-first assignment of items to `bins` by estimated cost. */
function balance<T>(items: T[], bins: number, cost: (item: T) => number): T[][] {
  const assigned: T[][] = Array.from({ length: bins }, () => []);
  const load = new Array<number>(bins).fill(0);
  for (const item of [...items].sort((a, b) => cost(b) - cost(a))) {
    const bin = load.indexOf(Math.min(...load));
    (assigned[bin] as T[]).push(item);
    load[bin] = (load[bin] as number) + cost(item);
  }
  return assigned;
}

export class CorePool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  /** Tasks in flight per worker: a worker keeps the process alive exactly while this is positive. */
  private readonly inFlight: number[];
  private nextId = 0;

  /** Starts `threads` workers (default: one per available core). Call close() when done. */
  constructor(readonly threads: number = availableParallelism()) {
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new InvalidArgumentError(`threads is ${threads}; expected a positive integer`);
    }
    const module = kernelModule();
    this.inFlight = new Array<number>(threads).fill(0);
    this.workers = Array.from({ length: threads }, () => {
      const worker = new Worker(new URL("./kernels/worker.mjs", import.meta.url), { workerData: { module } });
      worker.unref(); // an idle pool must not keep the process alive; run() refs it while work is in flight
      worker.on("message", (reply: { id: number; error?: string }) => this.settle(reply));
      worker.on("error", (error) => this.failAll(error));
      return worker;
    });
  }

  private settle(reply: { id: number; error?: string }): void {
    const pending = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    if (reply.error === undefined) pending?.resolve();
    else pending?.reject(new Error(`kernel worker failed: ${reply.error}`));
  }

  private failAll(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private run(index: number, task: Task): Promise<void> {
    const worker = this.workers[index] as Worker;
    const id = this.nextId++;
    const before = this.inFlight[index] as number;
    this.inFlight[index] = before + 1;
    if (before === 0) worker.ref();
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...task, id });
    }).finally(() => {
      const after = (this.inFlight[index] as number) - 1;
      this.inFlight[index] = after;
      if (after === 0) worker.unref();
    });
  }

  /** Like reconstructRange in projection.ts; weights on a SharedArrayBuffer are updated without copies. */
  async reconstructRange(
    weights: Float32Array,
    offset: number,
    coefficients: Float32Array,
    seed: bigint,
    plan: Plan,
    family: Family,
    scale: number,
  ): Promise<void> {
    const args = { plan, seed, family, coefficients, scale, offset, weights };
    validateReconstruction(args);
    const target = shared(weights);
    const cuts = cutPoints(weights.length, this.threads);
    await Promise.all(
      this.workers.map((_, t) => {
        const from = cuts[t] as number;
        const to = cuts[t + 1] as number;
        const items = reconstructionItems(args, blockSlices(plan, offset + from, to - from)).map((item) => ({
          ...item,
          at: item.at + from,
        }));
        return this.run(t, { op: "reconstruct", items, coefficients, weights: target, scale });
      }),
    );
    if (target !== weights) weights.set(target);
  }

  /** The whole model: weights.length must equal plan.totalParams. */
  reconstruct(
    weights: Float32Array,
    coefficients: Float32Array,
    seed: bigint,
    plan: Plan,
    family: Family,
    scale: number,
  ): Promise<void> {
    assertLength(weights.length, plan.totalParams, "weights");
    return this.reconstructRange(weights, 0, coefficients, seed, plan, family, scale);
  }

  /** Like project in projection.ts. */
  async project(delta: Float32Array, seed: bigint, plan: Plan, family: Family): Promise<Float32Array> {
    validateProjection(delta, seed, plan, family);
    const source = shared(delta);
    const out = sharedFloat32Array(plan.totalK);
    const items = projectionItems(plan, seed, family, this.threads);
    const cost = (item: ProjectItem) => item.size * (family === "sketch" ? 1 : item.to - item.from);
    const bins = balance(items, this.threads, cost);
    await Promise.all(
      this.workers.map((_, t) => this.run(t, { op: "project", items: bins[t] ?? [], delta: source, out })),
    );
    return new Float32Array(out);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/** Rows grouped into batches for the training engine, reshuffled each epoch by seed. */
import { shuffled } from "./random.ts";
import type { Sequence } from "./sequences.ts";

/**
 * A batch as the engine feeds it: row-major [batchSize, seqLen] arrays. Loss is the mean negative
 * log-likelihood of `targets` over positions where `lossMask` is 1.
 */
export interface Batch {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array;
  targets: Int32Array;
  lossMask: Float32Array;
}

export interface BatchOptions {
  batchSize: number;
  /** Row order is a shuffle by (seed, epoch): the same pair always gives the same batches. */
  seed: number;
  epoch?: number;
  /** Drop a last batch smaller than batchSize (default), or emit it smaller. */
  dropLast?: boolean;
}

export function* batches(sequences: readonly Sequence[], options: BatchOptions): Generator<Batch> {
  const { batchSize, seed, epoch = 0, dropLast = true } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const seqLen = sequences[0]?.inputIds.length ?? 0;
  const order = shuffled(sequences, seed, epoch + 1); // stream 0 is the example shuffle before packing
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    if (rows.length < batchSize && dropLast) return;
    const batch: Batch = {
      batchSize: rows.length,
      seqLen,
      inputIds: new Int32Array(rows.length * seqLen),
      targets: new Int32Array(rows.length * seqLen),
      lossMask: new Float32Array(rows.length * seqLen),
    };
    rows.forEach((row, i) => {
      if (row.inputIds.length !== seqLen) {
        throw new RangeError(`rows must share one length: found ${row.inputIds.length} and ${seqLen}`);
      }
      batch.inputIds.set(row.inputIds, i * seqLen);
      batch.targets.set(row.targets, i * seqLen);
      batch.lossMask.set(row.lossMask, i * seqLen);
    });
    yield batch;
  }
}

/** Batches over epoch 0, 1, 2, … without end (each epoch its own shuffle), for a fixed number of steps. */
export function* epochBatches(
  sequences: readonly Sequence[],
  options: Omit<BatchOptions, "epoch">,
): Generator<Batch> {
  for (let epoch = 0; ; epoch++) {
    let yielded = false;
    for (const batch of batches(sequences, { ...options, epoch })) {
      yielded = true;
      yield batch;
    }
    if (!yielded) {
      throw new RangeError(`${sequences.length} rows cannot fill one batch of ${options.batchSize}`);
    }
  }
}

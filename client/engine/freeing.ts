// onnxruntime-node returns every output in a new ArrayBuffer, so each resident SGD step (resident.ts) drops the
// previous step's weights. V8 frees dropped buffers only at a full collection, which it starts late, and
// meanwhile the next steps' copies take fresh memory: at the benchmark's reference config (68 MiB of weights),
// peak RSS crept from 684 to 746–774 MiB over 15 steps. Detaching a dropped buffer (ArrayBuffer.prototype.
// transfer to length 0) hands its memory back to the allocator at once: a step's work after its run, row blocks
// copied in and buffers freed, takes 4–6 ms, against 13–18 ms with a full collection after each step (which
// would also double a tiny model's step).
// Large models go without. Freeing a step's buffers all at once lets glibc return the top of its heap to the
// kernel, and the next step faults it in again: at 252 MB (d 512, 12 layers) every other step faulted 37k pages
// (steps no faster on average, peak RSS 1.6–1.7 GiB against 1.8); with a collection after each step at 498 MB
// (GPT-2 small), 84k pages, 4% slower on average, for 70 MiB less.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const FREE_UP_TO_WEIGHT_BYTES = 128 * 2 ** 20;

/** `expression`, evaluated in a context made after V8's `flag` is set: how Node 20 reaches builtins that its V8
 * has only behind a flag (a new context has them, and the flag changes nothing else). */
function builtinBehindFlag<T>(flag: string, expression: string): T {
  setFlagsFromString(flag);
  return runInNewContext(expression) as T;
}

type Transfer = (this: ArrayBuffer, newLength: number) => ArrayBuffer;
let transfer: Transfer | undefined;
let collect: (() => void) | undefined;

/** Whether a session on the host frees the outputs it drops at once, for a model of `weightBytes`. */
export function freesDroppedOutputs(weightBytes: number): boolean {
  return weightBytes <= FREE_UP_TO_WEIGHT_BYTES;
}

/** Frees each array's memory now. Each must be the whole of an ArrayBuffer that nothing else uses: afterwards
 * it and every view of its buffer are empty (detached). */
export function freeArrays(arrays: readonly ArrayBufferView[]): void {
  for (const array of arrays) {
    if (!(array.buffer instanceof ArrayBuffer) || array.byteLength !== array.buffer.byteLength) {
      throw new Error(
        `freeArrays: expected arrays that each span a whole ArrayBuffer, got ${array.byteLength} of ` +
          `${array.buffer.byteLength} bytes`,
      );
    }
  }
  transfer ??=
    (ArrayBuffer.prototype as { transfer?: Transfer }).transfer ??
    builtinBehindFlag<Transfer>("--harmony-rab-gsab-transfer", "ArrayBuffer.prototype.transfer");
  for (const array of arrays) transfer.call(array.buffer as ArrayBuffer, 0);
}

/** A full, synchronous garbage collection. */
export function collectGarbage(): void {
  collect ??= (globalThis as { gc?: () => void }).gc ?? builtinBehindFlag<() => void>("--expose-gc", "gc");
  collect();
}

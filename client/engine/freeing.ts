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

let collect: (() => void) | undefined;

/** A full, synchronous garbage collection. */
export function collectGarbage(): void {
  if (!collect) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      // As for transfer below: a context made after this flag is set has gc(), and the flag changes nothing else.
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as () => void;
    }
  }
  collect();
}

const FREE_UP_TO_WEIGHT_BYTES = 128 * 2 ** 20;

type Transfer = (this: ArrayBuffer, newLength: number) => ArrayBuffer;
let transfer: Transfer | undefined;

function arrayBufferTransfer(): Transfer {
  if (!transfer) {
    const native = (ArrayBuffer.prototype as { transfer?: Transfer }).transfer;
    if (native) transfer = native;
    else {
      // Node 20's V8 has transfer behind a flag; a context made after the flag is set has it, and the flag
      // changes nothing else.
      setFlagsFromString("--harmony-rab-gsab-transfer");
      transfer = runInNewContext("ArrayBuffer.prototype.transfer") as Transfer;
    }
  }
  return transfer;
}

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
  const detach = arrayBufferTransfer();
  for (const array of arrays) detach.call(array.buffer as ArrayBuffer, 0);
}

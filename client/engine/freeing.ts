// onnxruntime-node returns every output in a new ArrayBuffer, so each resident SGD step (resident.ts) drops the
// previous step's weights. V8 frees dropped buffers only at a full collection, which it starts late, and
// meanwhile the next steps' copies take fresh memory and fault it in. Detaching a dropped buffer
// (ArrayBuffer.prototype.transfer to length 0) hands its memory back to the allocator at once, for the next
// step's copies to reuse. On the 2-core reference machine, resident steps alone:
//   - the benchmark's reference config (68 MiB of weights): peak RSS crept from 684 to 746–774 MiB over 15 steps
//     without; a step's work after its run, row blocks copied in and buffers freed, takes 4–6 ms, against 13–18
//     ms with a full collection after each step instead (which would also double a tiny model's step);
//   - d 512, 12 layers (252 MB): 290 page faults a step instead of 7–8k, 2.9–3.1 s a step instead of 3.1–3.4 s,
//     peak RSS 1738–1743 MiB instead of 1847;
//   - GPT-2 small (498 MB): 530 faults a step instead of 10k, 5.74 s instead of 6.37 s, 2769 MiB instead of 2833.
// (A full collection after each step instead had made every other step fault 37k pages at 252 MB and 84k at
// GPT-2 small; the collection when the steps begin, which drops what came before them, ended that too.)
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** `expression`, evaluated in a context made after V8's `flag` is set: how Node 20 reaches builtins that its V8
 * has only behind a flag (a new context has them, and the flag changes nothing else). */
function builtinBehindFlag<T>(flag: string, expression: string): T {
  setFlagsFromString(flag);
  return runInNewContext(expression) as T;
}

type Transfer = (this: ArrayBuffer, newLength: number) => ArrayBuffer;
let transfer: Transfer | undefined;
let collect: (() => void) | undefined;

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

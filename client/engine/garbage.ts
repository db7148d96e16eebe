// onnxruntime-node returns every output in a new ArrayBuffer, so each resident SGD step (resident.ts) drops the
// previous step's weights. V8 frees them only at a full collection, which it starts late, and meanwhile the next
// steps' copies take fresh memory: peak RSS crept 50–100 MiB above where a full collection after each step held
// it. (Not after the host path's steps, whose gradient copies are dropped within the step: there a collection
// made every step fault 17k pages, 1.1 s a step instead of 0.86 s at the reference config.)
// That collection pays off only for smallish models. Freeing a step's buffers all at once lets glibc hand the
// top of its heap back to the kernel, and when they are large the next step faults that memory in again:
//   - 68 MiB of weights (the benchmark's reference config): 684 → 746–774 MiB without, 683–704 MiB with; a
//     collection takes 11–13 ms and steps were no slower (page faults per step: ~0 with, up to 9k without);
//   - 252 MB (d 512, 12 layers): every other step faulted 37k pages, 7% slower on average, for 100 MiB less;
//   - 498 MB (GPT-2 small): every other step faulted 84k pages, 4% slower on average, for 70 MiB less.
// Tiny models' steps take milliseconds, which a collection would double.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

const COLLECT_FROM_BYTES = 32 * 2 ** 20;
const COLLECT_UP_TO_BYTES = 128 * 2 ** 20;

let collect: (() => void) | undefined;

/** A full, synchronous garbage collection. */
function collectGarbage(): void {
  if (!collect) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      // A context made after this flag is set has gc(); the flag changes nothing else.
      setFlagsFromString("--expose-gc");
      collect = runInNewContext("gc") as () => void;
    }
  }
  collect();
}

/** After a run whose `bytes` of outputs the caller no longer references: frees them now, where that pays. */
export function collectDroppedOutputs(bytes: number): void {
  if (bytes >= COLLECT_FROM_BYTES && bytes <= COLLECT_UP_TO_BYTES) collectGarbage();
}

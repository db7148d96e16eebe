/**
 * The F32 safetensors file that `encodeSafetensors(tensors)` would produce, readable range by range without
 * building it: the header is encoded once, and tensor bytes are read straight from views of each tensor's
 * Float32Array. An uploader filling one multipart part at a time then holds the parts in flight, not a second
 * copy of the model (4 bytes × parameters).
 *
 * F32 only: narrowing to F16/BF16 would need converting, not viewing, and checkpoint 0 is uploaded as F32.
 * The tensors are viewed, not copied, so they must not change while the image is being read.
 */
import { SafetensorsLayoutError } from "./errors.ts";
import { type NamedTensor, specsOf, type WriteOptions } from "./safetensors.ts";
import { encodeHeader } from "./safetensors-header.ts";

export interface SafetensorsImage {
  /** The file's size in bytes. */
  readonly byteLength: number;
  /** Copies the file's bytes [start, start + into.length) into `into`. */
  readInto(start: number, into: Uint8Array): void;
}

export function safetensorsImage(
  tensors: readonly NamedTensor[],
  options: Pick<WriteOptions, "metadata"> = {},
): SafetensorsImage {
  const { bytes: header } = encodeHeader(specsOf(tensors, "F32"), options.metadata);
  // In file order: the header, then every tensor's data, each starting where the one before ends.
  const segments = [
    header,
    ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
  const starts: number[] = [];
  let byteLength = 0;
  for (const segment of segments) {
    starts.push(byteLength);
    byteLength += segment.length;
  }

  /** The segment holding byte `at` (< byteLength): the last one starting at or before it, skipping empty ones. */
  const segmentAt = (at: number) => {
    let low = 0;
    let high = segments.length - 1;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if ((starts[mid] as number) <= at) low = mid;
      else high = mid - 1;
    }
    return low;
  };

  return {
    byteLength,
    readInto(start, into) {
      const end = start + into.length;
      if (!Number.isSafeInteger(start) || start < 0 || end > byteLength) {
        throw new SafetensorsLayoutError(
          `bytes [${start}, ${end}) are outside the ${byteLength}-byte safetensors file; ` +
            `expected a range within [0, ${byteLength})`,
        );
      }
      let copied = 0;
      for (let s = segmentAt(start); copied < into.length; s++) {
        const segment = segments[s] as Uint8Array;
        const from = start + copied - (starts[s] as number);
        const n = Math.min(segment.length - from, into.length - copied);
        into.set(segment.subarray(from, from + n), copied);
        copied += n;
      }
    },
  };
}

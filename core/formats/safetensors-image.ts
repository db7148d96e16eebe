/**
 * The F32 safetensors file that `encodeSafetensors(tensors)` would produce, readable range by range without
 * building it: the header is encoded once, and tensor bytes come either from views of in-memory Float32Arrays or
 * from a reader that returns elements on demand (a model's own files, widened from F16/BF16 as needed). An
 * uploader filling one multipart part at a time then holds the parts in flight, not a copy of the model (4 bytes ×
 * parameters), and with readers not even the model itself.
 *
 * F32 only: narrowing to F16/BF16 would need converting, not viewing, and checkpoint 0 is uploaded as F32.
 * In-memory tensors are viewed, not copied, so they must not change while the image is being read.
 */
import { SafetensorsLayoutError } from "./errors.ts";
import { type NamedTensor, specsOf, type WriteOptions } from "./safetensors.ts";
import { encodeHeader } from "./safetensors-header.ts";

/** A tensor whose values are read when needed: elements [start, start + count), flattened row-major, as f32. */
export interface LazyTensor {
  name: string;
  shape: number[];
  read(start: number, count: number): Promise<Float32Array>;
}

export interface SafetensorsImage {
  /** The file's size in bytes. */
  readonly byteLength: number;
  /** Copies the file's bytes [start, start + into.length) into `into`. */
  readInto(start: number, into: Uint8Array): Promise<void>;
}

const isLazy = (t: NamedTensor | LazyTensor): t is LazyTensor => "read" in t;
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function safetensorsImage(
  tensors: readonly (NamedTensor | LazyTensor)[],
  options: Pick<WriteOptions, "metadata"> = {},
): SafetensorsImage {
  const eager = tensors.filter((t): t is NamedTensor => !isLazy(t));
  specsOf(eager, "F32"); // checks that each in-memory tensor fills its shape
  const { bytes: header } = encodeHeader(
    tensors.map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape })),
    options.metadata,
  );
  // In file order: the header, then every tensor's data, each starting where the one before ends.
  const segments: { start: number; length: number; source: Uint8Array | LazyTensor }[] = [];
  let byteLength = 0;
  for (const source of [
    header,
    ...tensors.map((t) =>
      isLazy(t) ? t : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    ),
  ]) {
    const length = source instanceof Uint8Array ? source.length : 4 * sizeOf(source.shape);
    segments.push({ start: byteLength, length, source });
    byteLength += length;
  }

  /** The segment holding byte `at` (< byteLength): the last one starting at or before it, skipping empty ones. */
  const segmentAt = (at: number) => {
    let low = 0;
    let high = segments.length - 1;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if ((segments[mid] as (typeof segments)[number]).start <= at) low = mid;
      else high = mid - 1;
    }
    return low;
  };

  /** Bytes [from, from + into.length) of a lazy tensor's data, read as the whole elements that cover them. */
  const readLazy = async (tensor: LazyTensor, from: number, into: Uint8Array) => {
    const first = Math.floor(from / 4);
    const values = await tensor.read(first, Math.ceil((from + into.length) / 4) - first);
    const offset = from - first * 4;
    into.set(new Uint8Array(values.buffer, values.byteOffset + offset, into.length));
  };

  return {
    byteLength,
    async readInto(start, into) {
      const end = start + into.length;
      if (!Number.isSafeInteger(start) || start < 0 || end > byteLength) {
        throw new SafetensorsLayoutError(
          `bytes [${start}, ${end}) are outside the ${byteLength}-byte safetensors file; ` +
            `expected a range within [0, ${byteLength})`,
        );
      }
      let copied = 0;
      for (let s = segmentAt(start); copied < into.length; s++) {
        const { start: segmentStart, length, source } = segments[s] as (typeof segments)[number];
        const from = start + copied - segmentStart;
        const piece = into.subarray(copied, copied + Math.min(length - from, into.length - copied));
        if (source instanceof Uint8Array) piece.set(source.subarray(from, from + piece.length));
        else await readLazy(source, from, piece);
        copied += piece.length;
      }
    },
  };
}

/**
 * safetensors checkpoints: read f32/f16/bf16 tensors into f32 master weights, write f32 (or f16/bf16).
 *
 * Reading goes through a file handle one tensor (or one element range) at a time, so a checkpoint larger
 * than memory can be imported tensor by tensor. Writing streams tensors in header order into a
 * temporary file that is renamed into place only when every tensor has been written: a crash or a bad
 * tensor never leaves a half-written checkpoint under the final name.
 */
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { FormatError, MissingTensorError, SafetensorsLayoutError, UnsupportedDtypeError } from "./errors.ts";
import { decodeBf16, decodeF16, encodeHalf } from "./half.ts";
import {
  DTYPE_BYTES,
  type Dtype,
  encodeHeader,
  parseHeaderJson,
  parseHeaderLength,
  type SafetensorsHeader,
  type TensorEntry,
} from "./safetensors-header.ts";

export type { Dtype, SafetensorsHeader, TensorEntry } from "./safetensors-header.ts";

/** A named f32 tensor, row-major. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The dtypes that convert to and from f32 master weights. */
export type FloatDtype = "F32" | "F16" | "BF16";

export interface WriteOptions {
  /** Stored dtype; f32 by default. Narrowing rounds to nearest even. */
  dtype?: FloatDtype;
  /** String → string pairs stored under "__metadata__". */
  metadata?: Record<string, string>;
}

if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
  throw new FormatError("BIG_ENDIAN", "safetensors I/O here assumes a little-endian machine");
}

/** Elements converted per chunk when narrowing or widening, bounding scratch memory (4 MiB of f32). */
const CHUNK_ELEMENTS = 1 << 20;

export class SafetensorsReader {
  private readonly byName: Map<string, TensorEntry>;

  private constructor(
    private readonly handle: FileHandle,
    readonly header: SafetensorsHeader,
    readonly path: string,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens a file and validates its header; tensor data is read later, on demand. */
  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const length = parseHeaderLength(await readExactly(handle, 0, Math.min(8, size)), size);
      const header = parseHeaderJson(await readExactly(handle, 8, length), size - 8 - length);
      return new SafetensorsReader(handle, header, path);
    } catch (error) {
      await handle.close();
      if (error instanceof FormatError) error.message = `${path}: ${error.message}`;
      throw error;
    }
  }

  /** Tensor entries in data order. */
  get tensors(): readonly TensorEntry[] {
    return this.header.tensors;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): TensorEntry {
    const found = this.byName.get(name);
    if (found === undefined) {
      const known = [...this.byName.keys()];
      const sample = known.slice(0, 5).join(", ") + (known.length > 5 ? ", …" : "");
      throw new MissingTensorError(
        `${this.path} has no tensor "${name}" (it holds ${known.length}: ${sample})`,
      );
    }
    return found;
  }

  /** The stored bytes of a tensor, or of bytes [from, to) within it. */
  async readBytes(name: string, from = 0, to?: number): Promise<Uint8Array> {
    const t = this.entry(name);
    const end = to ?? t.end - t.begin;
    if (from < 0 || end > t.end - t.begin || from > end) {
      throw new SafetensorsLayoutError(
        `byte range [${from}, ${end}) is outside tensor "${name}" (${t.end - t.begin} bytes)`,
      );
    }
    return readExactly(this.handle, this.header.dataStart + t.begin + from, end - from);
  }

  /** A whole tensor as f32. */
  async readTensor(name: string): Promise<NamedTensor> {
    const t = this.entry(name);
    const count = (t.end - t.begin) / DTYPE_BYTES[t.dtype];
    return { name, shape: [...t.shape], data: await this.readRange(name, 0, count) };
  }

  /** Elements [start, start + count) of a tensor (flattened, row-major) as f32. */
  async readRange(name: string, start: number, count: number): Promise<Float32Array> {
    const t = this.entry(name);
    const width = floatWidth(t);
    const total = (t.end - t.begin) / width;
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(count) ||
      start < 0 ||
      count < 0 ||
      start + count > total
    ) {
      throw new SafetensorsLayoutError(
        `elements [${start}, ${start + count}) are outside tensor "${name}" (${total})`,
      );
    }
    const out = new Float32Array(count);
    for (let done = 0; done < count; done += CHUNK_ELEMENTS) {
      const n = Math.min(CHUNK_ELEMENTS, count - done);
      const at = this.header.dataStart + t.begin + (start + done) * width;
      const target = out.subarray(done, done + n);
      if (t.dtype === "F32")
        await readInto(this.handle, at, new Uint8Array(target.buffer, target.byteOffset, n * 4));
      else widen(t.dtype as FloatDtype, await readExactly(this.handle, at, n * width), target);
    }
    return out;
  }

  /** Every tensor as f32, one at a time in data order. */
  async *[Symbol.asyncIterator](): AsyncGenerator<NamedTensor> {
    for (const t of this.header.tensors) yield await this.readTensor(t.name);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Reads a whole checkpoint into memory as f32 tensors (for small models; use the reader for big ones). */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: NamedTensor[]; metadata: Record<string, string> }> {
  const reader = await SafetensorsReader.open(path);
  try {
    const tensors: NamedTensor[] = [];
    for await (const t of reader) tensors.push(t);
    return { tensors, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}

/** Parses a checkpoint held in memory (an S3 object body, say) into f32 tensors. */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: NamedTensor[];
  metadata: Record<string, string>;
} {
  const length = parseHeaderLength(bytes, bytes.length);
  const header = parseHeaderJson(bytes.subarray(8, 8 + length), bytes.length - 8 - length);
  const tensors = header.tensors.map((t) => {
    const raw = bytes.subarray(header.dataStart + t.begin, header.dataStart + t.end);
    const data = new Float32Array(raw.length / floatWidth(t));
    widen(t.dtype as FloatDtype, raw, data);
    return { name: t.name, shape: [...t.shape], data };
  });
  return { tensors, metadata: header.metadata };
}

/** Serializes tensors, in the given order, to one buffer. */
export function encodeSafetensors(tensors: readonly NamedTensor[], options: WriteOptions = {}): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const { bytes: header, entries } = encodeHeader(specsOf(tensors, dtype), options.metadata);
  const last = entries.at(-1);
  const out = new Uint8Array(header.length + (last?.end ?? 0));
  out.set(header);
  tensors.forEach((t, i) => {
    const at = header.length + (entries[i] as TensorEntry).begin;
    narrow(t.data, dtype, out.subarray(at, at + t.data.length * DTYPE_BYTES[dtype]));
  });
  return out;
}

/**
 * Streams tensors to a file in a fixed order. The header is written first from the specs, so each
 * `write` must supply the next tensor's data; `close` checks all arrived and moves the file into place.
 */
export class SafetensorsWriter {
  private next = 0;
  private readonly scratch: Uint8Array;

  private constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    private readonly partialPath: string,
    private readonly specs: readonly { name: string; shape: number[] }[],
    private readonly dtype: FloatDtype,
  ) {
    this.scratch = new Uint8Array(CHUNK_ELEMENTS * DTYPE_BYTES[dtype]);
  }

  static async create(
    path: string,
    specs: readonly { name: string; shape: readonly number[] }[],
    options: WriteOptions = {},
  ): Promise<SafetensorsWriter> {
    const dtype = options.dtype ?? "F32";
    const { bytes } = encodeHeader(
      specs.map((s) => ({ name: s.name, dtype, shape: s.shape })),
      options.metadata,
    );
    const partialPath = `${path}.partial`;
    const handle = await open(partialPath, "w");
    const writer = new SafetensorsWriter(
      handle,
      path,
      partialPath,
      specs.map((s) => ({ name: s.name, shape: [...s.shape] })),
      dtype,
    );
    try {
      await writer.writeAll(bytes);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  /** Writes the next tensor's values (its length must match its shape). */
  async write(data: Float32Array): Promise<void> {
    const spec = this.specs[this.next];
    if (spec === undefined)
      throw new FormatError("WRITE_ORDER", `all ${this.specs.length} tensors were already written`);
    const expected = spec.shape.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new SafetensorsLayoutError(
        `tensor "${spec.name}" shape [${spec.shape}] needs ${expected} values, got ${data.length}`,
      );
    }
    for (let done = 0; done < data.length; done += CHUNK_ELEMENTS) {
      const chunk = data.subarray(done, Math.min(done + CHUNK_ELEMENTS, data.length));
      if (this.dtype === "F32")
        await this.writeAll(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      else {
        const bytes = this.scratch.subarray(0, chunk.length * 2);
        encodeHalf(chunk, this.dtype, bytes);
        await this.writeAll(bytes);
      }
    }
    this.next++;
  }

  /** Finishes the file; fails (leaving nothing under the final name) if a tensor was not written. */
  async close(): Promise<void> {
    if (this.next !== this.specs.length) {
      const missing = this.specs[this.next]?.name;
      await this.abort();
      throw new FormatError(
        "WRITE_INCOMPLETE",
        `closed after ${this.next} of ${this.specs.length} tensors; "${missing}" was never written`,
      );
    }
    await this.handle.close();
    await rename(this.partialPath, this.path);
  }

  /** Discards the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined); // already closed is fine: the goal is only no leftovers
    await rm(this.partialPath, { force: true });
  }

  private async writeAll(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, written, bytes.length - written);
      written += bytesWritten;
    }
  }
}

/** Writes tensors to `path` in the given order (atomically: see SafetensorsWriter). */
export async function writeSafetensors(
  path: string,
  tensors: readonly NamedTensor[],
  options: WriteOptions = {},
): Promise<void> {
  specsOf(tensors, options.dtype ?? "F32"); // validate shapes before touching the disk
  const writer = await SafetensorsWriter.create(path, tensors, options);
  try {
    for (const t of tensors) await writer.write(t.data);
    await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** The header specs of tensors stored as `dtype`, refusing a tensor whose data length disagrees with its shape. */
export function specsOf(tensors: readonly NamedTensor[], dtype: FloatDtype) {
  return tensors.map((t) => {
    const expected = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== expected) {
      throw new SafetensorsLayoutError(
        `tensor "${t.name}" shape [${t.shape}] needs ${expected} values, got ${t.data.length}`,
      );
    }
    return { name: t.name, dtype: dtype as Dtype, shape: t.shape };
  });
}

function floatWidth(t: TensorEntry): number {
  if (t.dtype !== "F32" && t.dtype !== "F16" && t.dtype !== "BF16") {
    throw new UnsupportedDtypeError(
      `tensor "${t.name}" is ${t.dtype}; only F32, F16 and BF16 load as f32 weights`,
    );
  }
  return DTYPE_BYTES[t.dtype];
}

function widen(dtype: FloatDtype, bytes: Uint8Array, out: Float32Array): void {
  if (dtype === "F16") decodeF16(bytes, out);
  else if (dtype === "BF16") decodeBf16(bytes, out);
  else new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
}

function narrow(values: Float32Array, dtype: FloatDtype, out: Uint8Array): void {
  if (dtype === "F32") out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  else encodeHalf(values, dtype, out);
}

async function readExactly(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await readInto(handle, position, out);
  return out;
}

async function readInto(handle: FileHandle, position: number, out: Uint8Array): Promise<void> {
  let done = 0;
  while (done < out.length) {
    const { bytesRead } = await handle.read(out, done, out.length - done, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsLayoutError(
        `file ended at byte ${position + done}, expected ${out.length - done} more bytes`,
      );
    }
    done += bytesRead;
  }
}

/**
 * The safetensors header: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON mapping each tensor
 * name to {dtype, shape, data_offsets: [begin, end]} (byte offsets relative to the first byte after the
 * header), plus an optional "__metadata__" object of string → string. Tensor bytes are little-endian,
 * row-major, and the byte ranges tile the data section exactly: no gaps, no overlaps, nothing after.
 *
 * Everything here is checked before a single tensor byte is trusted, so a hostile or truncated file is a
 * typed error, never an out-of-bounds read or a silently wrong tensor.
 */
import { SafetensorsHeaderError, SafetensorsLayoutError, UnsupportedDtypeError } from "./errors.ts";

/** Bytes per element of every dtype the format defines. */
export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

/** Headers larger than this are refused: real ones are a few MB, and the reference reader uses 100 MiB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range in the data section, [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In data order (ascending offsets). */
  tensors: TensorEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data section: 8 + header length. */
  dataStart: number;
}

const ENTRY_KEYS = ["data_offsets", "dtype", "shape"];

/** Reads the header length from the first 8 bytes, checking it against the file size. */
export function parseHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsHeaderError(
      `file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`,
    );
  }
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsHeaderError(`header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(length);
  if (n < 2) throw new SafetensorsHeaderError(`header length ${n} is too short to hold a JSON object`);
  if (8 + n > fileSize) {
    throw new SafetensorsHeaderError(
      `header length ${n} runs past the end of a ${fileSize}-byte file (expected at most ${fileSize - 8})`,
    );
  }
  return n;
}

/** Parses and validates the JSON header; `dataBytes` is the size of everything after it. */
export function parseHeaderJson(json: Uint8Array, dataBytes: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(json);
  } catch {
    throw new SafetensorsHeaderError("header is not valid UTF-8");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsHeaderError(`header is not valid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(parsed)) {
    throw new SafetensorsHeaderError("header must be a JSON object mapping tensor names to entries");
  }
  const names = topLevelKeys(text);

  let metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  // Header order, not Object.entries order (which puts integer-like names first): it breaks offset ties.
  for (const name of names) {
    const value = parsed[name];
    if (name === "__metadata__") metadata = parseMetadata(value);
    else tensors.push(parseEntry(name, value));
  }
  checkLayout(tensors, dataBytes);
  return { tensors, metadata, dataStart: 8 + json.length };
}

function parseMetadata(value: unknown): Record<string, string> {
  if (!isPlainObject(value)) throw new SafetensorsHeaderError('"__metadata__" must be an object');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new SafetensorsHeaderError(`"__metadata__.${key}" must be a string, got ${describe(v)}`);
    }
  }
  return value as Record<string, string>;
}

function parseEntry(name: string, value: unknown): TensorEntry {
  const where = `tensor "${name}"`;
  if (!isPlainObject(value)) {
    throw new SafetensorsHeaderError(`${where} must be an object {dtype, shape, data_offsets}`);
  }
  const keys = Object.keys(value).sort();
  if (keys.join() !== ENTRY_KEYS.join()) {
    throw new SafetensorsHeaderError(`${where} has keys [${keys}], expected exactly [${ENTRY_KEYS}]`);
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new UnsupportedDtypeError(
      `${where} has dtype ${JSON.stringify(dtype)}, expected one of ${Object.keys(DTYPE_BYTES).join(", ")}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new SafetensorsHeaderError(`${where} shape must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw new SafetensorsHeaderError(`${where} data_offsets must be [begin, end] of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin)
    throw new SafetensorsLayoutError(`${where} data_offsets [${begin}, ${end}] end before they begin`);
  const expected = byteLength(shape, dtype as Dtype);
  if (expected !== end - begin) {
    throw new SafetensorsLayoutError(
      `${where}: shape [${shape}] of ${dtype} needs ${expected} bytes, but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as Dtype, shape: shape as number[], begin, end };
}

/** Sorts entries by offset and checks that they tile [0, dataBytes) exactly. */
function checkLayout(tensors: TensorEntry[], dataBytes: number): void {
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.end > dataBytes) {
      throw new SafetensorsLayoutError(
        `tensor "${t.name}" ends at byte ${t.end}, past the ${dataBytes}-byte data section`,
      );
    }
    if (t.begin < cursor) {
      throw new SafetensorsLayoutError(
        `tensor "${t.name}" begins at byte ${t.begin}, overlapping the one before`,
      );
    }
    if (t.begin > cursor) {
      throw new SafetensorsLayoutError(
        `tensor "${t.name}" begins at byte ${t.begin}, expected ${cursor}: tensors must be contiguous`,
      );
    }
    cursor = t.end;
  }
  if (cursor !== dataBytes) {
    throw new SafetensorsLayoutError(
      `tensors cover ${cursor} bytes but the data section holds ${dataBytes}: trailing bytes are not allowed`,
    );
  }
}

/** Bytes a tensor of this shape and dtype occupies; throws if the count is not a safe integer. */
export function byteLength(shape: readonly number[], dtype: Dtype): number {
  let bytes = DTYPE_BYTES[dtype];
  for (const d of shape) bytes *= d;
  if (!Number.isSafeInteger(bytes)) {
    throw new SafetensorsLayoutError(`shape [${shape}] of ${dtype} is too large to address`);
  }
  return bytes;
}

/**
 * Serializes a header for tensors laid out in the given order, padded with spaces so the data section
 * starts on an 8-byte boundary (which lets readers view F32/F64 data in place).
 */
export function encodeHeader(
  specs: readonly { name: string; dtype: Dtype; shape: readonly number[] }[],
  metadata: Record<string, string> = {},
): { bytes: Uint8Array; entries: TensorEntry[] } {
  // Written member by member: JSON.stringify of an object would move integer-like names to the front.
  const members: string[] = [];
  if (Object.keys(metadata).length > 0) members.push(`"__metadata__":${JSON.stringify(metadata)}`);
  const names = new Set<string>();
  const entries: TensorEntry[] = [];
  let cursor = 0;
  for (const spec of specs) {
    if (spec.name === "__metadata__" || names.has(spec.name)) {
      throw new SafetensorsHeaderError(`tensor name "${spec.name}" is reserved or used twice`);
    }
    const end = cursor + byteLength(spec.shape, spec.dtype);
    names.add(spec.name);
    const entry = { dtype: spec.dtype, shape: spec.shape, data_offsets: [cursor, end] };
    members.push(`${JSON.stringify(spec.name)}:${JSON.stringify(entry)}`);
    entries.push({ name: spec.name, dtype: spec.dtype, shape: [...spec.shape], begin: cursor, end });
    cursor = end;
  }
  const text = new TextEncoder().encode(`{${members.join(",")}}`);
  const padded = Math.ceil(text.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + text.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(text, 8);
  return { bytes, entries };
}

/**
 * The top-level object's keys in the order written, rejecting duplicates (JSON.parse would keep the last
 * of two equal keys, silently dropping a tensor). The text is already known to be valid JSON, so tracking
 * strings and nesting depth suffices.
 */
function topLevelKeys(text: string): string[] {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      let k = j + 1;
      while (k < text.length && /\s/.test(text[k] as string)) k++;
      if (depth === 1 && text[k] === ":") {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key))
          throw new SafetensorsHeaderError(`header names "${key}" twice; names must be unique`);
        seen.add(key);
      }
      i = j;
    }
  }
  return [...seen];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

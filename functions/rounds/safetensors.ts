// Reading and writing the safetensors container: 8-byte little-endian header length, JSON header, raw data.
// Only F32 is accepted: the checkpoint is float32 end to end.

import type { Plan } from "../../core/plan.ts";
import { BadRequest } from "../errors.ts";

export interface TensorLocation {
  name: string;
  /** Byte offset of the tensor's data from the start of the file. */
  fileOffset: number;
  /** Parameter offset in the flat vector. */
  flatOffset: number;
  size: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export function headerLength(prefix: Uint8Array): number {
  const length = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (length <= 0 || length > MAX_HEADER_BYTES) {
    throw new BadRequest("invalid_checkpoint", `safetensors header length ${length} is out of range`);
  }
  return length;
}

/** Checks the file holds every plan tensor as F32 with the plan's shape; returns where each one's data lies. */
export function locateTensors(headerJson: string, plan: Plan): TensorLocation[] {
  let header: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] }>;
  try {
    header = JSON.parse(headerJson);
  } catch {
    throw new BadRequest("invalid_checkpoint", "safetensors header is not JSON");
  }
  const dataStart = 8 + Buffer.byteLength(headerJson);
  return plan.tensors.map((t) => {
    const entry = header[t.name];
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (!entry) throw new BadRequest("invalid_checkpoint", `checkpoint lacks tensor ${t.name}`);
    if (entry.dtype !== "F32") {
      throw new BadRequest("invalid_checkpoint", `tensor ${t.name} is ${entry.dtype}; only F32 is accepted`);
    }
    if (JSON.stringify(entry.shape) !== JSON.stringify(t.shape)) {
      throw new BadRequest(
        "invalid_checkpoint",
        `tensor ${t.name} has shape [${entry.shape}], plan says [${t.shape}]`,
      );
    }
    const [begin, end] = entry.data_offsets ?? [0, -1];
    if (end - begin !== size * 4) {
      throw new BadRequest(
        "invalid_checkpoint",
        `tensor ${t.name} data is ${end - begin} bytes, expected ${size * 4}`,
      );
    }
    return { name: t.name, fileOffset: dataStart + begin, flatOffset: t.offset, size };
  });
}

/** The header for the flat vector written tensor after tensor in plan order (padded to 8 bytes as the format asks). */
export function headerFor(plan: Plan): Uint8Array {
  const entries = Object.fromEntries(
    plan.tensors.map((t) => {
      const size = t.shape.reduce((a, b) => a * b, 1);
      return [t.name, { dtype: "F32", shape: t.shape, data_offsets: [t.offset * 4, (t.offset + size) * 4] }];
    }),
  );
  let text = JSON.stringify(entries);
  text += " ".repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const out = new Uint8Array(8 + Buffer.byteLength(text));
  new DataView(out.buffer).setBigUint64(0, BigInt(Buffer.byteLength(text)), true);
  out.set(Buffer.from(text), 8);
  return out;
}

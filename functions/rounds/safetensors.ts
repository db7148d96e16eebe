// The safetensors container, through core's strict reader and writer (core/formats): the server only
// adds what a checkpoint import needs, every plan tensor present as F32 with the plan's shape.
import { FormatError } from "../../core/formats/errors.ts";
import { encodeHeader, parseHeaderJson, parseHeaderLength } from "../../core/formats/safetensors-header.ts";
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

function asBadRequest<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof FormatError) throw new BadRequest("invalid_checkpoint", error.message);
    throw error;
  }
}

export const headerLength = (prefix: Uint8Array, fileSize: number) =>
  asBadRequest(() => parseHeaderLength(prefix, fileSize));

/** Checks the file holds every plan tensor as F32 with the plan's shape; returns where each one's data lies. */
export function locateTensors(header: Uint8Array, fileSize: number, plan: Plan): TensorLocation[] {
  const parsed = asBadRequest(() => parseHeaderJson(header, fileSize - 8 - header.byteLength));
  const byName = new Map(parsed.tensors.map((t) => [t.name, t]));
  return plan.tensors.map((t) => {
    const entry = byName.get(t.name);
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
    const size = t.shape.reduce((a, b) => a * b, 1);
    return { name: t.name, fileOffset: parsed.dataStart + entry.begin, flatOffset: t.offset, size };
  });
}

/** The header for the flat vector written tensor after tensor in plan order, which is the checkpoint's order. */
export const headerFor = (plan: Plan): Uint8Array =>
  encodeHeader(plan.tensors.map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape }))).bytes;

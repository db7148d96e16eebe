// The client holds a model as the server does: one flat float32 vector in plan order. Tensors are views into it,
// so training updates, block hashes and reconstruction all touch the same bytes with no copies.
import { createHash } from "node:crypto";
import type { Plan } from "../../core/plan.ts";
import type { Manifest } from "../api/routes.ts";

/**
 * Node 20's V8 holds at most 2^32 elements in one typed array; Node 22 and later hold 2^53 − 1. The client views
 * the flat vector as bytes to hash, write and send it, so on Node 20 its 4 bytes a parameter are the limit.
 */
const NODE_20_BYTE_LIMIT = 2 ** 32;

/**
 * Throws, saying which Node.js to use, where this Node cannot view a flat vector of `totalParams` float32 as one
 * byte array: V8 itself would only say "Invalid typed array length", at the first hash or write.
 */
export function assertFlatVectorFits(
  totalParams: number,
  nodeMajor = Number(process.versions.node.split(".")[0]),
) {
  if (nodeMajor < 22 && totalParams * 4 > NODE_20_BYTE_LIMIT) {
    throw new RangeError(
      `the model has ${totalParams} parameters (${totalParams * 4} bytes of float32), and Node.js ${nodeMajor} ` +
        `holds at most ${NODE_20_BYTE_LIMIT} bytes in one array: run the client on Node.js 22 or newer`,
    );
  }
}

/** A zeroed flat vector of the model's parameters. */
export function flatVector(totalParams: number): Float32Array {
  assertFlatVectorFits(totalParams);
  return new Float32Array(totalParams);
}

export interface TensorView {
  shape: number[];
  data: Float32Array;
}

/** Name → view into `values` for every plan tensor, in plan order. */
export function tensorViews(plan: Plan, values: Float32Array): Map<string, TensorView> {
  if (values.length !== plan.totalParams) {
    throw new RangeError(`weights hold ${values.length} values; the plan has ${plan.totalParams} parameters`);
  }
  return new Map(
    plan.tensors.map((t) => {
      const size = t.shape.reduce((a, b) => a * b, 1);
      return [t.name, { shape: t.shape, data: values.subarray(t.offset, t.offset + size) }];
    }),
  );
}

export const bytesOf = (values: Float32Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** SHA-256 (hex) of each plan block's little-endian float32 bytes, as the manifest records them. */
export function blockDigests(plan: Plan, values: Float32Array): string[] {
  const bytes = bytesOf(values);
  return plan.blocks.map((b) =>
    createHash("sha256")
      .update(bytes.subarray(b.start * 4, (b.start + b.size) * 4))
      .digest("hex"),
  );
}

/** Indices of the blocks whose bytes differ from the manifest (empty: the weights are the checkpoint exactly). */
export function mismatchedBlocks(plan: Plan, values: Float32Array, manifest: Manifest): number[] {
  const expected = new Map(manifest.blocks.map((b) => [b.index, b.sha256]));
  if (expected.size !== plan.blocks.length) {
    throw new RangeError(
      `manifest of checkpoint ${manifest.checkpoint} lists ${expected.size} blocks; the plan has ${plan.blocks.length}`,
    );
  }
  return blockDigests(plan, values).flatMap((digest, i) => (expected.get(i) === digest ? [] : [i]));
}

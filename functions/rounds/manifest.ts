// A checkpoint is the flat float32 (little-endian) parameter vector cut into shards, plus a manifest written last
// that names every shard and holds a SHA-256 per block, so a client can verify what it holds. Shards hold whole
// plan blocks where they can; a block larger than a shard (a 7B model's embedding is 2 GiB) is cut across
// several, so a shard task's memory is bounded by the shard size whatever the model.
import { createHash } from "node:crypto";
import type { Plan } from "../../core/plan.ts";
import { objectKeys } from "../storage/objects.ts";

export interface ShardSpec {
  index: number;
  /** First parameter of the shard in the flat vector. */
  start: number;
  /** Parameters in the shard. */
  length: number;
  /** Plan block indices the shard holds whole (none where it is a piece of a cut block). */
  blocks: number[];
}

export interface BlockDigest {
  index: number;
  start: number;
  size: number;
  sha256: string;
}

/** What a shard task records beside its shard (as `<shard>.json`), for the commit step to build the manifest. */
export interface ShardDigest extends ShardSpec {
  key: string;
  sha256: string;
  blockDigests: BlockDigest[];
}

/** What a shard task returns: small, so thousands fit in a Distributed Map's result. */
export interface ShardOutcome {
  index: number;
  length: number;
  key: string;
  sha256: string;
  /** Bytes of parameter buffers the task held at once: the bound the memory test checks. */
  heldBytes: number;
}

export interface Manifest {
  version: 1;
  runId: string;
  checkpoint: number;
  dtype: "F32";
  totalParams: number;
  tensors: Plan["tensors"];
  shards: { index: number; start: number; length: number; key: string; sha256: string }[];
  blocks: BlockDigest[];
}

/**
 * Groups consecutive blocks into shards of at most `shardParams`. A block larger than that is cut into the fewest
 * pieces of at most `shardParams`, of sizes that differ by at most one, each a shard of its own.
 */
export function planShards(plan: Plan, shardParams: number): ShardSpec[] {
  const shards: ShardSpec[] = [];
  let open: ShardSpec | undefined;
  let next = 0;
  const startShard = (start: number): ShardSpec => {
    const shard = { index: shards.length, start, length: 0, blocks: [] };
    shards.push(shard);
    return shard;
  };
  plan.blocks.forEach((block, index) => {
    if (block.start !== next) throw new Error(`plan block ${index} is not contiguous`);
    next += block.size;
    if (block.size > shardParams) {
      const pieces = Math.ceil(block.size / shardParams);
      for (let p = 0; p < pieces; p++) {
        const from = Math.floor((p * block.size) / pieces);
        open = startShard(block.start + from);
        open.length = Math.floor(((p + 1) * block.size) / pieces) - from;
      }
      open = undefined;
      return;
    }
    if (!open || open.length + block.size > shardParams) open = startShard(block.start);
    open.length += block.size;
    open.blocks.push(index);
  });
  return shards;
}

/** Indices of the plan blocks that no shard holds whole: those cut across shards. */
export function cutBlocks(plan: Plan, shards: readonly ShardSpec[]): number[] {
  const whole = new Set(shards.flatMap((s) => s.blocks));
  return plan.blocks.flatMap((_, index) => (whole.has(index) ? [] : [index]));
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Hashes the shard and each block in it, from the shard's own buffer. */
export function digestShard(plan: Plan, shard: ShardSpec, values: Float32Array, key: string): ShardDigest {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const blockDigests = shard.blocks.map((index) => {
    const block = plan.blocks[index];
    if (!block) throw new Error(`shard ${shard.index} names block ${index}, which the plan lacks`);
    const from = (block.start - shard.start) * 4;
    return {
      index,
      start: block.start,
      size: block.size,
      sha256: sha256(bytes.subarray(from, from + block.size * 4)),
    };
  });
  return { ...shard, key, sha256: sha256(bytes), blockDigests };
}

/** The manifest from every shard's digest and the digests of the blocks cut across shards (cutBlocks). */
export function buildManifest(
  runId: string,
  checkpoint: number,
  plan: Plan,
  shards: ShardDigest[],
  cutBlockDigests: BlockDigest[] = [],
): Manifest {
  const ordered = [...shards].sort((a, b) => a.index - b.index);
  ordered.forEach((shard, i) => {
    if (shard.index !== i || shard.key !== objectKeys.shard(runId, checkpoint, i)) {
      throw new Error(`checkpoint ${checkpoint}: shard ${i} missing or misplaced`);
    }
  });
  const blocks = [...ordered.flatMap((shard) => shard.blockDigests), ...cutBlockDigests];
  blocks.sort((a, b) => a.index - b.index);
  blocks.forEach((block, i) => {
    if (block.index !== i || block.start !== plan.blocks[i]?.start) {
      throw new Error(`checkpoint ${checkpoint}: block ${i} has no digest, or more than one`);
    }
  });
  if (blocks.length !== plan.blocks.length) {
    throw new Error(
      `checkpoint ${checkpoint}: ${blocks.length} block digests; the plan has ${plan.blocks.length}`,
    );
  }
  return {
    version: 1,
    runId,
    checkpoint,
    dtype: "F32",
    totalParams: plan.totalParams,
    tensors: plan.tensors,
    shards: ordered.map(({ index, start, length, key, sha256 }) => ({ index, start, length, key, sha256 })),
    blocks,
  };
}

export const shardSpecsOf = (manifest: Manifest, plan: Plan): ShardSpec[] =>
  manifest.shards.map(({ index, start, length }) => ({
    index,
    start,
    length,
    blocks: plan.blocks.flatMap((b, i) =>
      b.start >= start && b.start + b.size <= start + length ? [i] : [],
    ),
  }));

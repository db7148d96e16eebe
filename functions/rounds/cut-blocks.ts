// The SHA-256 of a block cut across shards (manifest.ts) needs its bytes in order, and the shard tasks that wrote
// them ran apart. So the step that writes the manifest reads them back from the written shards, a chunk at a time
// with the next chunk's read under way while one is hashed: memory is two chunks a block, whatever its size.
import { createHash } from "node:crypto";
import { forEachLimited } from "../../core/concurrency.ts";
import type { Plan } from "../../core/plan.ts";
import type { Services } from "../services.ts";
import { type BlockDigest, cutBlocks, type ShardSpec } from "./manifest.ts";

const CHUNK_BYTES = 16 * 1024 * 1024;
/** Cut blocks hashed at once, each over its own S3 connection: an 8B model's embedding and head are two. */
const BLOCKS_AT_ONCE = 4;

/** One range of an object to read: `bytes` bytes from `offset` of `key`. */
interface Range {
  key: string;
  offset: number;
  bytes: number;
}

/** The block's bytes as chunks of at most `chunkBytes` within the shards that hold its pieces. */
function chunksOf(
  block: { start: number; size: number },
  shards: readonly (ShardSpec & { key: string })[],
  chunkBytes: number,
) {
  const ranges: Range[] = [];
  const end = block.start + block.size;
  for (const shard of shards) {
    const from = Math.max(block.start, shard.start);
    const to = Math.min(end, shard.start + shard.length);
    for (let at = from * 4; at < to * 4; at += chunkBytes) {
      ranges.push({
        key: shard.key,
        offset: at - shard.start * 4,
        bytes: Math.min(chunkBytes, to * 4 - at),
      });
    }
  }
  return ranges;
}

/** Digests of the plan blocks that no shard holds whole, read back from the shards as written. */
export async function digestCutBlocks(
  svc: Services,
  plan: Plan,
  shards: readonly (ShardSpec & { key: string })[],
  chunkBytes = CHUNK_BYTES,
): Promise<BlockDigest[]> {
  const cut = cutBlocks(plan, shards);
  const digests: BlockDigest[] = [];
  await forEachLimited(cut.length, BLOCKS_AT_ONCE, async (n) => {
    const index = cut[n] as number;
    const block = plan.blocks[index] as Plan["blocks"][number];
    const buffers = [new Uint8Array(chunkBytes), new Uint8Array(chunkBytes)];
    const ranges = chunksOf(block, shards, chunkBytes);
    const covered = ranges.reduce((sum, r) => sum + r.bytes, 0);
    if (covered !== block.size * 4) {
      throw new Error(`plan block ${index}: the shards hold ${covered} of its ${block.size * 4} bytes`);
    }
    const hash = createHash("sha256");
    const read = (i: number) => {
      const range = ranges[i] as Range;
      const into = (buffers[i % 2] as Uint8Array).subarray(0, range.bytes);
      return svc.bucket.readInto(range.key, into, range.offset).then(() => into);
    };
    let pending = ranges.length > 0 ? read(0) : undefined;
    for (let i = 0; pending; i++) {
      const chunk = await pending;
      pending = i + 1 < ranges.length ? read(i + 1) : undefined;
      hash.update(chunk);
    }
    digests[n] = { index, start: block.start, size: block.size, sha256: hash.digest("hex") };
  });
  return digests;
}

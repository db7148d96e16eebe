// Bringing local weights to a committed checkpoint: replay the update log when the client holds an earlier
// checkpoint (a few KB per round), download the shards when it holds nothing, is too far behind, when a fedavg
// round is on the way, or when the replayed bytes fail the manifest's SHA-256 per block. Either way every block is checked before use.
import { createHash } from "node:crypto";
import { forEachLimited } from "../../core/concurrency.ts";
import type { Plan } from "../../core/plan.ts";
import { ApiError } from "../api/errors.ts";
import type { CheckpointLocation, ClientApi, Manifest } from "../api/routes.ts";
import { replay } from "./replay.ts";
import { bytesOf, flatVector, mismatchedBlocks } from "./weights.ts";

/**
 * Shards downloaded at once: several requests hide each one's round trip to S3, and a few keep the shards held
 * before they are copied into place (one shard each, SHARD_PARAMS × 4 bytes) small.
 */
const SHARDS_IN_FLIGHT = 4;

export type SyncMode = "replay" | "download";

export interface SyncOptions {
  mode: SyncMode;
  /** Replay at most this many rounds; further behind, download (default 100, one log page). */
  maxReplayRounds?: number;
  onProgress?: (message: string) => void;
}

export interface Held {
  checkpoint: number;
  values: Float32Array;
}

export interface SyncResult {
  checkpoint: number;
  method: "verified" | "replay" | "download";
  /** Rounds applied from the update log. */
  replayed: number;
  /** Blocks that failed verification after replay (then downloaded). */
  mismatched: number[];
  /** Why the checkpoint was downloaded: absent when it was not, or when download was asked for. */
  reason?: string;
}

/** The server's checkpoint disagrees with its own manifest: nothing local can fix that. */
export class CheckpointCorruptError extends Error {
  override name = "CheckpointCorruptError";
}

export async function syncTo(
  api: ClientApi,
  plan: Plan,
  held: Held | undefined,
  target: number,
  options: SyncOptions,
): Promise<Held & { result: SyncResult }> {
  const say = options.onProgress ?? (() => {});
  const location = await api.checkpoint(target);
  requireManifestOf(location, target, plan);
  const fallBack = (reason: string, replayed = 0, mismatched: number[] = []) => {
    say(`${reason}; downloading`);
    return download(api, plan, location, { method: "download", replayed, mismatched, reason }, say);
  };
  if (held && held.checkpoint === target) {
    const mismatched = mismatchedBlocks(plan, held.values, location.manifest);
    if (mismatched.length === 0)
      return { ...held, result: { checkpoint: target, method: "verified", replayed: 0, mismatched } };
    return fallBack(
      `local checkpoint ${target} differs from the manifest in ${mismatched.length} blocks`,
      0,
      mismatched,
    );
  }
  const behind = held ? target - held.checkpoint : Number.POSITIVE_INFINITY;
  const limit = options.maxReplayRounds ?? 100;
  if (held && options.mode === "replay" && behind > 0 && behind <= limit) {
    const entries = await api.log(held.checkpoint, target - 1);
    const values = held.values;
    const { reached, applied: replayed, stoppedBy } = replay(values, plan, held.checkpoint, target, entries);
    if (reached === target) {
      const mismatched = mismatchedBlocks(plan, values, location.manifest);
      if (mismatched.length === 0) {
        say(
          `replayed ${replayed} round(s) to checkpoint ${target}; all ${plan.blocks.length} blocks verified`,
        );
        return {
          checkpoint: target,
          values,
          result: { checkpoint: target, method: "replay", replayed, mismatched },
        };
      }
      return fallBack(
        `replay to checkpoint ${target} left ${mismatched.length} blocks unlike the manifest`,
        replayed,
        mismatched,
      );
    }
    return fallBack(
      stoppedBy === undefined
        ? `update log reaches only checkpoint ${reached} of ${target}`
        : `round ${stoppedBy} averaged full updates (fedavg), which the log does not carry`,
    );
  }
  if (options.mode === "replay") {
    return fallBack(
      !held
        ? "no checkpoint held locally to replay from"
        : behind < 0
          ? `the checkpoint held locally (${held.checkpoint}) is past ${target}`
          : `${behind} rounds behind, more than the ${limit} that replay covers`,
    );
  }
  return download(api, plan, location, { method: "download", replayed: 0, mismatched: [] }, say);
}

/** The server's manifest describes the checkpoint asked for, and its shards the plan's parameters: its numbers
 * name files and address the weights, so a server that is wrong (or not ours) must not choose them. */
function requireManifestOf({ manifest, shardUrls }: CheckpointLocation, target: number, plan: Plan): void {
  const wrong = (what: string) => {
    throw new CheckpointCorruptError(`the server's manifest for checkpoint ${target} ${what}`);
  };
  if (!Number.isSafeInteger(target) || target < 0) wrong("is not for a whole checkpoint number ≥ 0");
  if (manifest.checkpoint !== target) wrong(`names checkpoint ${JSON.stringify(manifest.checkpoint)}`);
  if (manifest.totalParams !== plan.totalParams) {
    wrong(`has ${manifest.totalParams} parameters; the plan has ${plan.totalParams}`);
  }
  if (shardUrls.length !== manifest.shards.length) {
    wrong(`lists ${manifest.shards.length} shards and came with ${shardUrls.length} URLs`);
  }
  let next = 0;
  for (const [i, { start, length }] of manifest.shards.entries()) {
    if (start !== next || !Number.isSafeInteger(length) || length <= 0) {
      wrong(`has shard ${i} at [${start}, +${length}); expected it to start at ${next}`);
    }
    next = start + length;
  }
  if (next !== plan.totalParams) wrong(`has shards that end at ${next}, not at ${plan.totalParams}`);
}

/** S3 refused every failed request as forbidden: what an expired presigned URL gets. */
function expiredUrls(error: unknown): boolean {
  const failures = error instanceof AggregateError ? error.errors : [error];
  return failures.every((e) => e instanceof ApiError && e.status === 403);
}

async function download(
  api: ClientApi,
  plan: Plan,
  { manifest, shardUrls }: CheckpointLocation,
  result: Omit<SyncResult, "checkpoint">,
  say: (message: string) => void,
): Promise<Held & { result: SyncResult }> {
  const values = flatVector(plan.totalParams);
  const bytes = bytesOf(values);
  const shards = manifest.shards;
  const fetched = new Set<number>();
  let urls = shardUrls;
  // The URLs given may be old (a long replay came first); ones asked for here must each move the download on.
  let askedFor = false;
  for (;;) {
    const before = fetched.size;
    const missing = shards.flatMap((_, i) => (fetched.has(i) ? [] : [i]));
    try {
      await forEachLimited(missing.length, SHARDS_IN_FLIGHT, async (n) => {
        const i = missing[n] as number;
        const shard = shards[i] as Manifest["shards"][number];
        const data = await api.http.download(urls[i] as string, shard.length * 4);
        const digest = createHash("sha256").update(data).digest("hex");
        if (data.byteLength !== shard.length * 4 || digest !== shard.sha256) {
          throw new CheckpointCorruptError(
            `shard ${i} of checkpoint ${manifest.checkpoint}: ${data.byteLength} bytes with SHA-256 ${digest}; ` +
              `the manifest says ${shard.length * 4} bytes with ${shard.sha256}`,
          );
        }
        bytes.set(data, shard.start * 4);
        fetched.add(i);
        say(
          `downloaded shard ${i + 1}/${shards.length} of checkpoint ${manifest.checkpoint} (${fetched.size} done)`,
        );
      });
      break;
    } catch (error) {
      // Presigned URLs last an hour, and a slow link may take longer over a large checkpoint: the shards already
      // fetched are kept, and fresh URLs asked for.
      if (!expiredUrls(error) || (askedFor && fetched.size === before)) throw error;
      say(
        `shard URLs of checkpoint ${manifest.checkpoint} expired after ${fetched.size} shards; asking for fresh ones`,
      );
      const fresh = await api.checkpoint(manifest.checkpoint);
      requireManifestOf(fresh, manifest.checkpoint, plan);
      urls = fresh.shardUrls;
      askedFor = true;
    }
  }
  const mismatched = mismatchedBlocks(plan, values, manifest);
  if (mismatched.length > 0) {
    throw new CheckpointCorruptError(
      `checkpoint ${manifest.checkpoint}: blocks ${mismatched.join(", ")} do not match their manifest hashes`,
    );
  }
  return { checkpoint: manifest.checkpoint, values, result: { ...result, checkpoint: manifest.checkpoint } };
}

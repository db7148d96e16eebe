// Checkpoint 0 from the operator's safetensors upload, and any committed checkpoint back out as safetensors.
// Both walk shard by shard, so neither holds more than a few shards (import) or one multipart part (export).
import { forEachLimited } from "../../core/concurrency.ts";
import { parsePlan } from "../../core/plan.ts";
import { Conflict, NotFound } from "../errors.ts";
import type { Services } from "../services.ts";
import { objectKeys } from "../storage/objects.ts";
import { readManifest } from "./aggregation.ts";
import { digestCutBlocks } from "./cut-blocks.ts";
import { requireRound, requireRun } from "./lifecycle.ts";
import {
  buildManifest,
  digestShard,
  type Manifest,
  planShards,
  type ShardDigest,
  type ShardSpec,
} from "./manifest.ts";
import { headerFor, headerLength, locateTensors } from "./safetensors.ts";

/**
 * Shards imported at once. One at a time, an import moves an 8B model's 32 GB (64 GB of S3 traffic) through one
 * S3 connection at a time, against a Lambda's 15 minutes; S3's performance guide has clients keep several
 * connections busy for throughput. Each shard in flight holds its values and, when an earlier import wrote it,
 * the stored copy it is checked against: 2 GiB at AWS's 256 MiB shards.
 */
const IMPORT_SHARDS_IN_FLIGHT = 4;

export async function importInitialCheckpoint(svc: Services, runId: string): Promise<Manifest> {
  const run = await requireRun(svc, runId);
  if (run.initialCheckpointReady)
    throw new Conflict("checkpoint_exists", `run ${runId} already has checkpoint 0`);
  const plan = parsePlan(run.config.plan);
  const source = objectKeys.importUpload(runId);
  const fileSize = await svc.bucket.size(source);
  const prefix = new Uint8Array(Math.min(8, fileSize));
  await svc.bucket.readInto(source, prefix);
  const header = new Uint8Array(headerLength(prefix, fileSize));
  await svc.bucket.readInto(source, header, 8);
  const tensors = locateTensors(header, fileSize, plan);
  const shards = planShards(plan, svc.shardParams);
  const results: ShardDigest[] = [];
  await forEachLimited(shards.length, IMPORT_SHARDS_IN_FLIGHT, async (i) => {
    const shard = shards[i] as ShardSpec;
    const values = new Float32Array(shard.length);
    const bytes = new Uint8Array(values.buffer);
    for (const t of tensors) {
      const from = Math.max(t.flatOffset, shard.start);
      const to = Math.min(t.flatOffset + t.size, shard.start + shard.length);
      if (from >= to) continue;
      const into = bytes.subarray((from - shard.start) * 4, (to - shard.start) * 4);
      await svc.bucket.readInto(source, into, t.fileOffset + (from - t.flatOffset) * 4);
    }
    const nonFinite = values.findIndex((v) => !Number.isFinite(v));
    if (nonFinite >= 0) {
      throw new Conflict(
        "invalid_checkpoint",
        `checkpoint parameter ${shard.start + nonFinite} is not finite`,
      );
    }
    const key = objectKeys.shard(runId, 0, shard.index);
    const digest = digestShard(plan, shard, values, key);
    await writeImported(svc, key, bytes, async () => {
      const stored = new Float32Array(shard.length);
      await svc.bucket.readInto(key, new Uint8Array(stored.buffer));
      return digestShard(plan, shard, stored, key).sha256 === digest.sha256;
    });
    results[i] = digest;
  }).catch((error: unknown) => {
    // Shards in flight may each fail; the first failure says what was wrong, and a refusal stays a refusal.
    throw error instanceof AggregateError ? error.errors[0] : error;
  });
  const manifest = buildManifest(runId, 0, plan, results, await digestCutBlocks(svc, plan, results));
  const manifestKey = objectKeys.manifest(runId, 0);
  const manifestText = JSON.stringify(manifest);
  await writeImported(svc, manifestKey, manifestText, async () => {
    return (await svc.bucket.readText(manifestKey)) === manifestText;
  });
  await svc.table.markInitialCheckpointReady(runId);
  return manifest;
}

/**
 * Writes a shard or the manifest of checkpoint 0, which no round or client uses before the import commits (the
 * run's ready flag, last). An earlier import that crashed, or was refused at a later shard, may have left the
 * object from another file: one that differs is replaced, or the manifest would not match the stored bytes.
 */
async function writeImported(
  svc: Services,
  key: string,
  body: Uint8Array | string,
  sameAsStored: () => Promise<boolean>,
): Promise<void> {
  if ((await svc.bucket.exists(key)) && (await sameAsStored())) return;
  const contentType = typeof body === "string" ? "application/json" : "application/octet-stream";
  await svc.bucket.putUncommitted(key, body, contentType);
}

/** A checkpoint exists once its manifest is committed: 0 after import, r + 1 once round r is DONE. */
export async function requireCommittedCheckpoint(
  svc: Services,
  runId: string,
  checkpoint: number,
): Promise<Manifest> {
  const run = await requireRun(svc, runId);
  const committed =
    checkpoint === 0
      ? run.initialCheckpointReady
      : checkpoint - 1 <= run.currentRound &&
        (await requireRound(svc, runId, checkpoint - 1)).state === "DONE";
  if (!committed)
    throw new NotFound("checkpoint_not_found", `run ${runId} has no committed checkpoint ${checkpoint}`);
  return readManifest(svc, runId, checkpoint);
}

/** How long an export's claim holds: the export Lambda's 15 minutes, and a minute more. */
const EXPORT_CLAIM_MS = 16 * 60_000;

/**
 * The key of checkpoint `checkpoint`'s export as one safetensors file, written first if it is not there yet; or
 * undefined while another call is writing it (the caller asks again later).
 */
export async function exportCheckpoint(
  svc: Services,
  runId: string,
  checkpoint: number,
): Promise<string | undefined> {
  const manifest = await requireCommittedCheckpoint(svc, runId, checkpoint);
  const plan = parsePlan((await requireRun(svc, runId)).config.plan);
  const key = objectKeys.export(runId, checkpoint);
  if (await svc.bucket.exists(key)) return key;
  const until = svc.now() + EXPORT_CLAIM_MS;
  if (!(await svc.table.claimExport(runId, checkpoint, svc.now(), until))) return undefined;
  const bucket = svc.bucket;
  const header = headerFor(plan);
  try {
    await bucket.putNewFromChunks(
      key,
      (async function* () {
        yield header;
        for (const shard of manifest.shards) yield* bucket.readChunks(shard.key);
      })(),
      undefined,
      header.byteLength + plan.totalParams * 4,
    );
  } catch (error) {
    // The next request starts the export again (and may report why it fails) instead of waiting on a claim
    // that no call is working under.
    await svc.table.releaseExport(runId, checkpoint, until).catch(async (releaseError: Error) => {
      // The export's own error is the one to report; an unreleased claim lapses by itself.
      const { logger } = await import("../observability.ts");
      logger.warn("export claim not released", { runId, checkpoint, reason: releaseError.message });
    });
    throw error;
  }
  return key;
}

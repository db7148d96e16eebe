// The three aggregation steps (Step Functions in AWS, the local orchestrator on one machine). Inputs are immutable
// and outputs deterministic, so any step can be re-run after a crash and produces the same bytes.
import { RunningAggregate } from "../../core/aggregate.ts";
import { parsePlan } from "../../core/plan.ts";
import { reconstructRange } from "../../core/projection.ts";
import { seedFromHex } from "../../core/seed.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";
import type { Services } from "../services.ts";
import { ObjectExists, objectKeys } from "../storage/objects.ts";
import type { LogEntry, RoundRecord, RunRecord, UploadRecord } from "../storage/records.ts";
import { digestCutBlocks } from "./cut-blocks.ts";
import { applyMeanUpdate, weightedUpdates } from "./fedavg.ts";
import { advance, requireRound, requireRun } from "./lifecycle.ts";
import {
  buildManifest,
  digestShard,
  type Manifest,
  type ShardDigest,
  type ShardOutcome,
  type ShardSpec,
  shardSpecsOf,
} from "./manifest.ts";
import { poolSeedOf, zerothOrderOf } from "./seed-pool.ts";
import { NonFiniteUpdate } from "./step-errors.ts";

export interface RoundRef {
  runId: string;
  round: number;
}
export interface ShardTask extends RoundRef {
  shard: ShardSpec;
}
export async function readManifest(svc: Services, runId: string, checkpoint: number): Promise<Manifest> {
  const text = await svc.bucket.readText(objectKeys.manifest(runId, checkpoint));
  if (!text) throw new Error(`run ${runId}: checkpoint ${checkpoint} has no manifest`);
  return JSON.parse(text) as Manifest;
}

async function logEntry(svc: Services, runId: string, round: number): Promise<LogEntry> {
  const [entry] = await svc.table.getLogEntries(runId, round, round);
  if (!entry) throw new Error(`run ${runId}: round ${round} has no update-log entry`);
  return entry;
}

/**
 * Uploads are finite one by one, and so is their weighted mean, yet the checkpoint it updates may not be: one
 * selected client sending coefficients near float32's largest with a vast example count overflowed half the
 * weights to ±Infinity, and the run trained on from there. The round fails instead, and the next one starts from
 * the same checkpoint.
 */
function requireFinite(values: Float32Array, round: number, offset: number, checkpoint: number): void {
  const at = values.findIndex((v) => !Number.isFinite(v));
  if (at < 0) return;
  throw new NonFiniteUpdate(
    `round ${round}: after the update, parameter ${offset + at} is ${values[at]}: the round's uploads are not ` +
      `applied, and checkpoint ${checkpoint} stays the run's latest`,
  );
}

const noUploads = (record: RoundRecord) =>
  new Error(`run ${record.runId} round ${record.round} closed with no uploads`);

/**
 * The strategy's part of a round's update-log entry, and how many uploads (and examples) went into it. ferret and
 * fedkseed uploads are summed a page at a time as the table returns them, in client-id order: a round's uploads
 * at K = 65,536 are 262 KB each, and thousands of them would not fit the Lambda at once.
 */
async function aggregateOf(svc: Services, run: RunRecord, record: RoundRecord) {
  const { strategy, basis, learningRate, weighting, localSteps } = run.config;
  const pages = svc.table.uploadPages(run.runId, record.round);
  if (strategy === "fedavg") {
    const uploads: UploadRecord[] = [];
    for await (const page of pages) uploads.push(...page);
    const counts = { uploads: uploads.length, examples: uploads.reduce((sum, u) => sum + u.examples, 0) };
    if (uploads.length === 0) throw noUploads(record);
    const updates = weightedUpdates(uploads, weighting);
    return {
      ...counts,
      strategy,
      seed: record.seed,
      basis,
      scale: learningRate,
      coefficients: new Float32Array(0),
      updates,
    };
  }
  const running = new RunningAggregate(weighting);
  for await (const page of pages) for (const upload of page) running.add(upload);
  const counts = { uploads: running.uploads, examples: running.examples };
  if (running.uploads === 0) throw noUploads(record);
  const coefficients = running.mean();
  if (strategy === "ferret")
    return { ...counts, strategy, seed: record.seed, basis, scale: learningRate, coefficients };
  return {
    ...counts,
    strategy,
    seed: poolSeedOf(run.salt),
    basis: "gaussian" as const,
    // Clients stepped w ← w − η·g·z_s, so their Δ is η·Σ g z_s: the global step carries η.
    scale: learningRate * localSteps.learningRate,
    coefficients,
    seedPool: zerothOrderOf(run.config).seedPool,
  };
}

/**
 * Step 1: aggregate the uploads into the round's update-log entry and list the shards to rebuild. ferret and
 * fedkseed entries hold the mean coefficients (fedkseed's over the run's seed pool); fedavg entries name the
 * committed updates and their weights, which the shard tasks average.
 */
export async function aggregateRound(svc: Services, { runId, round }: RoundRef): Promise<ShardTask[]> {
  const run = await requireRun(svc, runId);
  const record = await requireRound(svc, runId, round);
  if (record.state === "DONE") return [];
  if (record.state !== "AGGREGATING")
    throw new Error(`run ${runId} round ${round} is ${record.state}, not AGGREGATING`);
  const entry: LogEntry = {
    runId,
    round,
    baseCheckpoint: record.baseCheckpoint,
    resultCheckpoint: round + 1,
    ...(await aggregateOf(svc, run, record)),
  };
  await svc.table.putLogEntry(entry); // false on a re-run: the same entry is already there
  const plan = parsePlan(run.config.plan);
  const base = await readManifest(svc, runId, record.baseCheckpoint);
  return shardSpecsOf(base, plan).map((shard) => ({ runId, round, shard }));
}

/**
 * Writes `bytes` under `key`, or checks that an earlier attempt wrote exactly them. The write is tried first: a
 * re-run is rare, and putNew already asks whether the key exists.
 */
async function writeOnce(
  svc: Services,
  key: string,
  bytes: Uint8Array | string,
  sameAsWritten: () => Promise<boolean>,
): Promise<void> {
  const contentType = typeof bytes === "string" ? "application/json" : "application/octet-stream";
  try {
    await svc.bucket.putNew(key, bytes, contentType);
  } catch (error) {
    if (!(error instanceof ObjectExists)) throw error;
    if (!(await sameAsWritten())) throw new Error(`${key} exists with different content`);
  }
}

const writeTextOnce = (svc: Services, key: string, text: string) =>
  writeOnce(svc, key, text, async () => (await svc.bucket.readText(key)) === text);

/**
 * Step 2 (one per shard): read the base shard, apply the update in place, hash, write the shard and then its
 * digest under the new checkpoint. Returns a small outcome; the commit step reads the digests from S3.
 */
export async function reconstructShard(
  svc: Services,
  { runId, round, shard }: ShardTask,
): Promise<ShardOutcome> {
  const entry = await logEntry(svc, runId, round);
  const values = new Float32Array(shard.length);
  const bytes = new Uint8Array(values.buffer);
  const [run] = await Promise.all([
    requireRun(svc, runId),
    svc.bucket.readInto(objectKeys.shard(runId, entry.baseCheckpoint, shard.index), bytes),
  ]);
  const plan = parsePlan(run.config.plan);
  let alsoHeld = 0;
  if (entry.strategy === "fedavg") alsoHeld = await applyMeanUpdate(svc, entry, shard, values);
  else {
    const basisPlan = entry.strategy === "fedkseed" ? seedPoolPlan(plan, entry.seedPool as number) : plan;
    const seed = seedFromHex(entry.seed);
    reconstructRange(values, shard.start, entry.coefficients, seed, basisPlan, entry.basis, entry.scale);
  }
  requireFinite(values, round, shard.start, entry.baseCheckpoint);
  const key = objectKeys.shard(runId, entry.resultCheckpoint, shard.index);
  const digest = digestShard(plan, shard, values, key);
  // A previous attempt wrote this shard; it must be the same bytes (re-read over the same buffer).
  await writeOnce(svc, key, bytes, async () => {
    await svc.bucket.readInto(key, bytes);
    return digestShard(plan, shard, values, key).sha256 === digest.sha256;
  });
  await writeTextOnce(
    svc,
    objectKeys.shardDigest(runId, entry.resultCheckpoint, shard.index),
    JSON.stringify(digest),
  );
  return {
    index: shard.index,
    length: shard.length,
    key,
    sha256: digest.sha256,
    heldBytes: bytes.byteLength + alsoHeld,
  };
}

async function readDigest(
  svc: Services,
  runId: string,
  checkpoint: number,
  index: number,
): Promise<ShardDigest> {
  const text = await svc.bucket.readText(objectKeys.shardDigest(runId, checkpoint, index));
  if (!text) throw new Error(`run ${runId}: checkpoint ${checkpoint} shard ${index} has not been written`);
  return JSON.parse(text) as ShardDigest;
}

/**
 * Step 3: once every shard's digest is there, write the manifest (last), then AGGREGATING -> DONE, then the next
 * round if the run is active. Input {runId, round}; the Map's outcomes are not needed.
 */
export async function commitRound(svc: Services, { runId, round }: RoundRef): Promise<Manifest> {
  const run = await requireRun(svc, runId);
  const record = await requireRound(svc, runId, round);
  if (record.state === "DONE") {
    // A retry of a commit that died after its DONE write: the next round may not have been opened.
    await advance(svc, runId, round);
    return readManifest(svc, runId, round + 1);
  }
  if (record.state !== "AGGREGATING")
    throw new Error(`run ${runId} round ${round} is ${record.state}, not AGGREGATING`);
  const base = await readManifest(svc, runId, record.baseCheckpoint);
  const digests = await Promise.all(base.shards.map((s) => readDigest(svc, runId, round + 1, s.index)));
  const plan = parsePlan(run.config.plan);
  const manifest = buildManifest(runId, round + 1, plan, digests, await digestCutBlocks(svc, plan, digests));
  await writeTextOnce(svc, objectKeys.manifest(runId, round + 1), JSON.stringify(manifest));
  await svc.table.commitRound(runId, round);
  await advance(svc, runId, round);
  return manifest;
}

/**
 * Catch-all after retries are spent: the round is FAILED with the reason, and the run moves on. The run moves on
 * whoever wrote FAILED (or DONE): a retry of a call that died between the two must still open the next round.
 */
export async function failAggregation(
  svc: Services,
  { runId, round }: RoundRef,
  reason: string,
): Promise<void> {
  await svc.table.failRound(runId, round, "AGGREGATING", reason);
  await advance(svc, runId, round);
}

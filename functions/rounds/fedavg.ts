// FedAvg: each client PUTs its full update Δ = w_round − w_local (P little-endian float32) to a staging key through
// a presigned URL, then commits it on the upload route with its SHA-256. The server streams the staging object,
// checks it, and copies it once to a key only the server writes; aggregation averages the committed updates shard
// by shard, one update's byte range at a time, so memory follows the shard, never the model or the client count.
import { createHash } from "node:crypto";
import { clientWeights, type Weighting } from "../../core/aggregate.ts";
import { BadRequest, Conflict } from "../errors.ts";
import type { Services } from "../services.ts";
import { ObjectExists, objectKeys } from "../storage/objects.ts";
import type { LogEntry, RunConfig, UploadRecord, WeightedUpdate } from "../storage/records.ts";
import type { ShardSpec } from "./manifest.ts";
import { requireNormWithin } from "./upload-limits.ts";

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Passes the chunks on while checking them: exactly `expectedBytes`, every little-endian float32 finite, SHA-256 `sha256`, and within the run's upload limits. Throws a BadRequest at the
 * first problem, so a write fed from this stream is aborted. Chunks may split a float anywhere.
 */
export async function* checkedUpdate(
  chunks: AsyncIterable<Uint8Array>,
  expectedBytes: number,
  sha256: string,
  key: string,
  limits: Pick<RunConfig, "maxUploadNorm"> = {},
  onNorm: (norm: number) => void = () => {},
): AsyncIterable<Uint8Array> {
  const hash = createHash("sha256");
  const carry = new Uint8Array(4);
  const carryView = new DataView(carry.buffer);
  let carried = 0;
  let seen = 0;
  let squares = 0;
  const check = (value: number, index: number) => {
    if (!Number.isFinite(value)) {
      throw new BadRequest("non_finite", `update value ${index} is ${value}; all must be finite`);
    }
    squares += value * value;
  };
  for await (const chunk of chunks) {
    if (seen + chunk.byteLength > expectedBytes) {
      throw new BadRequest("wrong_length", `${key} is longer than the ${expectedBytes} bytes expected`);
    }
    hash.update(chunk);
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let i = 0;
    if (carried > 0) {
      while (carried < 4 && i < chunk.byteLength) carry[carried++] = chunk[i++] as number;
      if (carried === 4) {
        check(carryView.getFloat32(0, true), (seen + i - 4) / 4);
        carried = 0;
      }
    }
    for (; i + 4 <= chunk.byteLength; i += 4) check(view.getFloat32(i, true), (seen + i) / 4);
    while (i < chunk.byteLength) carry[carried++] = chunk[i++] as number;
    seen += chunk.byteLength;
    yield chunk;
  }
  if (seen !== expectedBytes) {
    throw new BadRequest(
      "wrong_length",
      `${key} has ${seen} bytes; expected ${expectedBytes / 4} float32 (${expectedBytes} bytes)`,
    );
  }
  const actual = hash.digest("hex");
  if (actual !== sha256) {
    throw new BadRequest("sha256_mismatch", `${key} has SHA-256 ${actual}; the commit names ${sha256}`);
  }
  const norm = Math.sqrt(squares);
  requireNormWithin(limits, norm, "update");
  onNorm(norm);
}

/**
 * Copies the client's staged update to its committed key if it is exactly `params` finite float32 with SHA-256
 * `sha256`, within the run's maxUploadNorm; on any refusal nothing is written. Returns the update's L2 norm when
 * this call checked it (not on a retry that finds the update committed). A retry after a crash finds the committed object and the claim
 * for the same SHA-256 and goes on; a commit of different bytes by the same client is refused.
 */
export async function commitStagedUpdate(
  svc: Services,
  ref: { runId: string; round: number; clientId: string },
  config: RunConfig,
  sha256: string,
): Promise<number | undefined> {
  const { runId, round, clientId } = ref;
  const params = config.plan.totalParams;
  const staged = objectKeys.stagedUpdate(runId, round, clientId);
  const committed = objectKeys.update(runId, round, clientId);
  const claim = async () => {
    const holder = await svc.table.claimUpdate(runId, round, clientId, sha256);
    if (holder !== sha256) {
      throw new Conflict(
        "update_committed",
        `client ${clientId}'s update for round ${round} is reserved for SHA-256 ${holder}; PUT those bytes again and commit them`,
      );
    }
  };
  if (await svc.bucket.exists(committed)) {
    await claim();
    return undefined;
  }
  if (!(await svc.bucket.exists(staged))) {
    throw new BadRequest("update_missing", `no update at ${staged}; PUT it to the URL from update-url first`);
  }
  const size = await svc.bucket.size(staged);
  if (size !== params * 4) {
    throw new BadRequest(
      "wrong_length",
      `${staged} has ${size} bytes; expected ${params} float32 (${params * 4} bytes)`,
    );
  }
  let norm: number | undefined;
  const chunks = checkedUpdate(svc.bucket.readChunks(staged), params * 4, sha256, staged, config, (n) => {
    norm = n;
  });
  try {
    await svc.bucket.putNewFromChunks(committed, chunks, claim);
  } catch (error) {
    // A concurrent commit by the same client got there first: the claim says whether it was these bytes.
    if (!(error instanceof ObjectExists)) throw error;
    await claim();
    return undefined;
  }
  return norm;
}

/** Each committed update in client order with the weight core's `aggregate` gives it, normalised to sum 1. */
export function weightedUpdates(uploads: readonly UploadRecord[], weighting: Weighting): WeightedUpdate[] {
  const { weights, total } = clientWeights(uploads, weighting);
  const shaOf = new Map(uploads.map((u) => [u.clientId, u.updateSha256]));
  return weights.map(({ clientId, weight }) => {
    const sha256 = shaOf.get(clientId);
    if (!sha256) throw new Error(`upload of client ${clientId} has no committed update`);
    return { clientId, weight: weight / total, sha256 };
  });
}

/**
 * values ← f32(values − scale · Σ_i weight_i Δ_i) over the shard, the sum in float64 in the entry's client order.
 * Holds the shard's float32 values, one update's range of the same size and a float64 sum: 16 bytes per parameter
 * of the shard. Returns the bytes held beside `values`.
 */
export async function applyMeanUpdate(
  svc: Services,
  entry: LogEntry,
  shard: ShardSpec,
  values: Float32Array,
): Promise<number> {
  const sums = new Float64Array(shard.length);
  const update = new Float32Array(shard.length);
  const bytes = new Uint8Array(update.buffer);
  for (const { clientId, weight } of entry.updates ?? []) {
    await svc.bucket.readInto(objectKeys.update(entry.runId, entry.round, clientId), bytes, shard.start * 4);
    for (let j = 0; j < shard.length; j++) sums[j] = (sums[j] as number) + weight * (update[j] as number);
  }
  for (let j = 0; j < shard.length; j++) {
    values[j] = (values[j] as number) - entry.scale * (sums[j] as number);
  }
  return sums.byteLength + bytes.byteLength;
}

// An in-memory stand-in for the client routes, computing checkpoints with core exactly as the backend's shard tasks
// do (one reconstructRange per shard), so client-side sync can be tested against the server's bytes.
import { createHash } from "node:crypto";
import { ApiError, ByteCounter } from "../../client/api/http.ts";
import type {
  Assignment,
  CheckpointLocation,
  Manifest,
  UploadReceipt,
  WireLogEntry,
} from "../../client/api/routes.ts";
import { blockDigests, bytesOf } from "../../client/sync/weights.ts";
import { aggregate } from "../../core/aggregate.ts";
import { buildPlan, type Plan } from "../../core/plan.ts";
import { project, reconstructRange } from "../../core/projection.ts";
import { deriveRoundSeed, seedToHex } from "../../core/seed.ts";

const SHARD_BLOCKS = 2;

export function tinyPlan(): Plan {
  return buildPlan(
    [
      { name: "embed", shape: [40, 8] },
      { name: "a.weight", shape: [8, 8] },
      { name: "a.bias", shape: [8] },
      { name: "b.weight", shape: [8, 16] },
      { name: "b.bias", shape: [16] },
      { name: "head", shape: [16, 8] },
    ],
    { totalK: 64, targetBlockSize: 64 },
  );
}

function seeded(length: number, seed: number, scale: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * scale;
  }
  return out;
}

export class FakeServer {
  /** By checkpoint number: 0, then round r's result at r + 1 (a FAILED round leaves a hole). */
  readonly checkpoints: Float32Array[];
  private latest = 0;
  readonly entries: WireLogEntry[] = [];
  readonly uploads: { round: number; coefficients: Float32Array }[] = [];
  readonly bytes = new ByteCounter();
  /** Rounds that FAILED (no log entry; the next round starts from the same checkpoint). */
  readonly failed = new Set<number>();
  corruptShard: number | undefined;

  constructor(
    readonly plan: Plan = tinyPlan(),
    readonly family: "gaussian" | "rademacher" | "sketch" = "gaussian",
  ) {
    this.checkpoints = [seeded(plan.totalParams, 7, 0.2)];
  }

  /** Round `round` runs on the latest checkpoint with `clients` seeded deltas (or FAILS when `fail`). */
  runRound(round: number, clients = 2, fail = false): void {
    if (fail) {
      this.failed.add(round);
      return;
    }
    const base = this.latest;
    const seed = deriveRoundSeed("salt", round);
    const uploads = Array.from({ length: clients }, (_, i) => ({
      clientId: `client-${i}`,
      coefficients: project(
        seeded(this.plan.totalParams, 100 * round + i, 0.01),
        seed,
        this.plan,
        this.family,
      ),
      examples: 10 + i,
    }));
    const coefficients = aggregate(uploads, "examples");
    const next = (this.checkpoints[base] as Float32Array).slice();
    for (const shard of this.shards()) {
      reconstructRange(
        next.subarray(shard.start, shard.start + shard.length),
        shard.start,
        coefficients,
        seed,
        this.plan,
        this.family,
        0.5,
      );
    }
    this.checkpoints[round + 1] = next;
    this.latest = round + 1;
    this.entries.push({
      runId: "run",
      round,
      strategy: "ferret",
      seed: seedToHex(seed),
      basis: this.family,
      scale: 0.5,
      baseCheckpoint: base,
      resultCheckpoint: round + 1,
      coefficients: Buffer.from(bytesOf(coefficients)).toString("base64"),
      uploads: clients,
      examples: uploads.reduce((n, u) => n + u.examples, 0),
    });
  }

  private shards() {
    const shards = [];
    for (let b = 0; b < this.plan.blocks.length; b += SHARD_BLOCKS) {
      const blocks = this.plan.blocks.slice(b, b + SHARD_BLOCKS);
      const first = blocks[0] as { start: number };
      shards.push({ start: first.start, length: blocks.reduce((n, x) => n + x.size, 0) });
    }
    return shards;
  }

  manifest(checkpoint: number): Manifest {
    const values = this.checkpoints[checkpoint] as Float32Array;
    const digests = blockDigests(this.plan, values);
    return {
      version: 1,
      runId: "run",
      checkpoint,
      dtype: "F32",
      totalParams: this.plan.totalParams,
      tensors: this.plan.tensors,
      shards: this.shards().map((s, index) => ({
        index,
        ...s,
        key: `mem://${checkpoint}/${index}`,
        sha256: "",
      })),
      blocks: this.plan.blocks.map((b, index) => ({
        index,
        start: b.start,
        size: b.size,
        sha256: digests[index] as string,
      })),
    };
  }

  /** The client routes, as the loop and sync use them. */
  api(assignments: Assignment[] = []) {
    const server = this;
    return {
      runId: "run",
      http: {
        bytes: server.bytes,
        async download(url: string) {
          const [checkpoint, shard] = url.replace("mem://", "").split("/").map(Number) as [number, number];
          const s = server.shards()[shard] as { start: number; length: number };
          const bytes = bytesOf(
            (server.checkpoints[checkpoint] as Float32Array).slice(s.start, s.start + s.length),
          );
          if (server.corruptShard === shard) bytes[0] = (bytes[0] as number) ^ 1;
          return bytes;
        },
      },
      async checkpoint(checkpoint: number): Promise<CheckpointLocation> {
        if (!server.checkpoints[checkpoint])
          throw new ApiError(404, "checkpoint_not_found", `no ${checkpoint}`);
        const manifest = server.manifest(checkpoint);
        for (const shard of manifest.shards) {
          const values = (server.checkpoints[checkpoint] as Float32Array).slice(
            shard.start,
            shard.start + shard.length,
          );
          shard.sha256 = createHash("sha256").update(bytesOf(values)).digest("hex");
        }
        return { manifest, manifestUrl: "", shardUrls: manifest.shards.map((s) => s.key) };
      },
      async log(from: number, to: number) {
        return server.entries.filter((e) => e.round >= from && e.round <= to);
      },
      async assignment(): Promise<Assignment> {
        const next = assignments.length > 1 ? assignments.shift() : assignments[0];
        if (!next) throw new ApiError(409, "no_round", "no round yet");
        return next;
      },
      async upload(round: number, coefficients: Float32Array): Promise<UploadReceipt> {
        if (server.uploads.some((u) => u.round === round)) {
          throw new ApiError(409, "duplicate_upload", `already uploaded for round ${round}`);
        }
        server.uploads.push({ round, coefficients });
        return { round, accepted: true, closedRound: false };
      },
    };
  }
}

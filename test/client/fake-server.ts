// An in-memory stand-in for the client routes, computing checkpoints with core exactly as the backend's shard tasks
// do (one reconstructRange per shard), so client-side sync can be tested against the server's bytes.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ApiError } from "../../client/api/errors.ts";
import { ByteCounter } from "../../client/api/http.ts";
import type {
  Assignment,
  CheckpointLocation,
  Manifest,
  Strategy,
  UpdateUrl,
  UploadReceipt,
  WireLogEntry,
} from "../../client/api/routes.ts";
import { blockDigests, bytesOf } from "../../client/sync/weights.ts";
import { aggregate } from "../../core/aggregate.ts";
import { buildPlan, type Plan } from "../../core/plan.ts";
import { type Family, project, reconstructRange } from "../../core/projection.ts";
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from "../../core/protocol.ts";
import { deriveRoundSeed, seedToHex } from "../../core/seed.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";

/** fedkseed rounds of the fake server: the run's pool seed and size. */
export const POOL = { seed: 0xabcdef0123456789n, size: 32, perturbation: 1e-3 };

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

/** One fedkseed client's dense pool coefficients: three steps' gradients summed per seed index. */
function poolCoefficients(round: number, client: number): Float32Array {
  const dense = new Float32Array(POOL.size);
  for (let t = 0; t < 3; t++) {
    const index = (7 * round + 5 * client + 11 * t) % POOL.size;
    dense[index] = (dense[index] as number) + Math.fround(0.1 * (t - 1) + 0.05 * client);
  }
  return dense;
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
  /** Accepted upload bodies: coefficients, seed pairs, or (fedavg) the committed update's bytes. */
  readonly uploads: { round: number; body: Uint8Array }[] = [];
  /** fedavg: the last bytes PUT to each round's staging URL. */
  readonly staging = new Map<number, Uint8Array>();
  readonly bytes = new ByteCounter();
  /** Rounds that FAILED (no log entry; the next round starts from the same checkpoint). */
  readonly failed = new Set<number>();
  corruptShard: number | undefined;

  constructor(
    readonly plan: Plan = tinyPlan(),
    readonly family: Family = "gaussian",
  ) {
    this.checkpoints = [seeded(plan.totalParams, 7, 0.2)];
  }

  /**
   * Round `round` runs on the latest checkpoint with `clients` seeded updates (or FAILS when `fail`), as the
   * backend aggregates them for `strategy`: ferret projects deltas on the round's bases; fedkseed sums seeded
   * (index, g) pairs into dense pool coefficients; fedavg averages full deltas (then the log has no coefficients).
   */
  runRound(round: number, clients = 2, fail = false, strategy: Strategy = "ferret"): void {
    if (fail) {
      this.failed.add(round);
      return;
    }
    const base = this.latest;
    const examples = Array.from({ length: clients }, (_, i) => 10 + i);
    const deltas = examples.map((_, i) => seeded(this.plan.totalParams, 100 * round + i, 0.01));
    const next = (this.checkpoints[base] as Float32Array).slice();
    const common = {
      runId: "run",
      round,
      scale: 0.5,
      baseCheckpoint: base,
      resultCheckpoint: round + 1,
      uploads: clients,
    };
    if (strategy === "fedavg") {
      const total = examples.reduce((a, b) => a + b, 0);
      for (let j = 0; j < next.length; j++) {
        let mean = 0;
        for (const [i, delta] of deltas.entries())
          mean += ((examples[i] as number) / total) * (delta[j] as number);
        next[j] = (next[j] as number) - 0.5 * mean;
      }
      this.entries.push({ ...common, strategy, seed: seedToHex(0n), basis: "gaussian", coefficients: "" });
    } else {
      const pool = strategy === "fedkseed" ? seedPoolPlan(this.plan, POOL.size) : undefined;
      const seed = pool ? POOL.seed : deriveRoundSeed("salt", round);
      const family = pool ? "gaussian" : this.family;
      const layout = pool ?? this.plan;
      const uploads = deltas.map((delta, i) => ({
        clientId: `client-${i}`,
        coefficients: pool ? poolCoefficients(round, i) : project(delta, seed, this.plan, family),
        examples: examples[i] as number,
      }));
      const coefficients = aggregate(uploads, "examples");
      for (const shard of this.shards()) {
        const range = next.subarray(shard.start, shard.start + shard.length);
        reconstructRange(range, shard.start, coefficients, seed, layout, family, 0.5);
      }
      this.entries.push({
        ...common,
        strategy,
        seed: seedToHex(seed),
        basis: family,
        coefficients: Buffer.from(bytesOf(coefficients)).toString("base64"),
        ...(pool ? { seedPool: POOL.size } : {}),
      });
    }
    this.checkpoints[round + 1] = next;
    this.latest = round + 1;
  }

  private refuseRepeat(round: number): void {
    if (this.uploads.some((u) => u.round === round)) {
      throw new ApiError(409, "duplicate_upload", `already uploaded for round ${round}`);
    }
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
        async putFile(url: string, path: string, onProgress?: (done: number, total: number) => void) {
          const bytes = new Uint8Array(await readFile(path));
          server.bytes.up += bytes.byteLength;
          onProgress?.(bytes.byteLength, bytes.byteLength);
          server.staging.set(Number(url.replace("mem://staging/", "")), bytes);
          return { bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") };
        },
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
      async upload(round: number, body: Float32Array | Uint8Array): Promise<UploadReceipt> {
        server.refuseRepeat(round);
        server.uploads.push({
          round,
          body: new Uint8Array(body.buffer.slice(0), body.byteOffset, body.byteLength),
        });
        return { round, accepted: true, closedRound: false };
      },
      async updateUrl(round: number): Promise<UpdateUrl> {
        server.refuseRepeat(round);
        return { url: `mem://staging/${round}`, key: `staging/${round}`, expiresAt: "" };
      },
      async commitUpdate(round: number, sha256: string): Promise<UploadReceipt> {
        server.refuseRepeat(round);
        const staged = server.staging.get(round);
        if (!staged || createHash("sha256").update(staged).digest("hex") !== sha256) {
          throw new ApiError(
            400,
            "update_mismatch",
            `staged update of round ${round} does not match ${sha256}`,
          );
        }
        server.uploads.push({ round, body: staged });
        return { round, accepted: true, closedRound: false };
      },
    };
  }
}

/**
 * A real HTTP server on 127.0.0.1 for tests of the transport itself (timeouts, broken connections, retries):
 * `handle` gets each request with its number, from 1. Its replies state the client's protocol version, as the
 * backend's do, unless `handle` removes the header. close() also drops connections left hanging.
 */
export async function listen(
  handle: (request: IncomingMessage, response: ServerResponse, n: number) => void,
  port = 0,
) {
  let requests = 0;
  const server = createServer((request, response) => {
    response.setHeader(PROTOCOL_HEADER, String(PROTOCOL_VERSION));
    handle(request, response, ++requests);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

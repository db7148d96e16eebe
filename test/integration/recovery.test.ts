// Crash recovery and bounded memory. A crash is injected at each step boundary of the aggregation (the round stays
// AGGREGATING, as when a Lambda dies); re-running the state machine must give core's bytes exactly, and no round may
// ever point at a checkpoint that is not complete. Each shard task must hold no more than its own shard.

import { DeleteObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitRound, readManifest, reconstructShard } from "../../functions/rounds/aggregation.ts";
import { shardSpecsOf } from "../../functions/rounds/manifest.ts";
import { objectKeys } from "../../functions/storage/objects.ts";
import { Crash } from "../../infra/local/orchestrator.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  bytesOf,
  createRun,
  downloadCheckpoint,
  expectedCheckpoint,
  type Run,
  tinyModel,
  uploadRound,
} from "./harness.ts";

const model = tinyModel(
  Array.from({ length: 10 }, (_, i) => ({ name: `transformer.h.${i}.mlp.c_proj.weight`, shape: [12, 16] })),
);
const SHARD_PARAMS = 256;

let stack: LocalStack;
let api: Api;

beforeAll(async () => {
  stack = await startLocalStack({ threads: 2, shardParams: SHARD_PARAMS, orchestrator: { attempts: 1 } });
  api = new Api(stack);
});

afterAll(() => stack?.close());

const newRun = () =>
  createRun(api, model, { clientsPerRound: 2, quorum: 2, minUploads: 2, targetBlockSize: 192 }, 2);

/** Every DONE round's result checkpoint is downloadable, complete, and verifies against its manifest. */
async function noRoundPointsAtAnIncompleteCheckpoint(run: Run) {
  const round = await stack.services.table.getRound(run.runId, 0);
  const download = await api.call("GET", `/runs/${run.runId}/checkpoints/1`, {
    token: run.clients[0]?.token,
  });
  if (round?.state === "DONE") expect(download.status).toBe(200);
  else expect(download).toMatchObject({ status: 404, body: { error: "checkpoint_not_found" } });
}

describe("a crash at each aggregation step boundary", () => {
  const boundaries = ["aggregated", "shard-0", "shard-7", "shards-done", "manifest-written"] as const;

  it.each(boundaries)("after %s: re-running gives core's bytes and commits once", async (boundary) => {
    const run = await newRun();
    let crashed = false;
    const crashOnce = (at: string) => {
      if (at === boundary && !crashed) {
        crashed = true;
        throw new Crash(`injected at ${at}`);
      }
    };
    const table = stack.services.table;
    const commitRound = table.commitRound.bind(table);
    stack.orchestrator.options.crashAt = crashOnce;
    table.commitRound = async (runId, round) => {
      crashOnce("manifest-written");
      return commitRound(runId, round);
    };
    try {
      const { seed, uploads } = await uploadRound(api, run);
      await stack.orchestrator.idle();
      expect(crashed).toBe(true);
      expect((await table.getRound(run.runId, 0))?.state).toBe("AGGREGATING");
      await noRoundPointsAtAnIncompleteCheckpoint(run);

      await stack.orchestrator.aggregate({ runId: run.runId, round: 0 });
      expect(await table.getRound(run.runId, 0)).toMatchObject({ state: "DONE", resultCheckpoint: 1 });
      await noRoundPointsAtAnIncompleteCheckpoint(run);
      const { bytes } = await downloadCheckpoint(api, run, 1);
      const expected = expectedCheckpoint(run, model.weights, seed, uploads);
      expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(expected)))).toBe(true);
      expect((await table.getRound(run.runId, 1))?.baseCheckpoint).toBe(1);
    } finally {
      stack.orchestrator.options.crashAt = undefined;
      table.commitRound = commitRound;
    }
  });

  it("a shard task that died between writing its shard and its digest is repaired by the re-run", async () => {
    const run = await newRun();
    stack.orchestrator.options.crashAt = (at) => {
      if (at === "shards-done") throw new Crash("injected after the shards");
    };
    let seed: bigint;
    let uploads: Awaited<ReturnType<typeof uploadRound>>["uploads"];
    try {
      ({ seed, uploads } = await uploadRound(api, run));
      await stack.orchestrator.idle();
    } finally {
      stack.orchestrator.options.crashAt = undefined;
    }
    const s3 = new S3Client({ endpoint: stack.env.AWS_ENDPOINT_URL_S3, forcePathStyle: true });
    const digest = objectKeys.shardDigest(run.runId, 1, 3);
    await s3.send(new DeleteObjectCommand({ Bucket: stack.env.BUCKET_NAME, Key: digest }));
    await expect(commitRound(stack.services, { runId: run.runId, round: 0 })).rejects.toThrow(
      /shard 3 has not been/,
    );
    await noRoundPointsAtAnIncompleteCheckpoint(run);

    await stack.orchestrator.aggregate({ runId: run.runId, round: 0 });
    const { bytes } = await downloadCheckpoint(api, run, 1);
    expect(
      Buffer.from(bytes).equals(Buffer.from(bytesOf(expectedCheckpoint(run, model.weights, seed, uploads)))),
    ).toBe(true);
  });

  it("a re-run that finds a shard of other bytes under its key fails rather than keep them", async () => {
    const run = await newRun();
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    const shard = shardSpecsOf(await readManifest(stack.services, run.runId, 0), run.plan)[2];
    if (!shard) throw new Error("the checkpoint has fewer than 3 shards");
    const s3 = new S3Client({ endpoint: stack.env.AWS_ENDPOINT_URL_S3, forcePathStyle: true });
    await s3.send(
      new PutObjectCommand({
        Bucket: stack.env.BUCKET_NAME,
        Key: objectKeys.shard(run.runId, 1, shard.index),
        Body: new Uint8Array(shard.length * 4),
      }),
    );
    await expect(reconstructShard(stack.services, { runId: run.runId, round: 0, shard })).rejects.toThrow(
      /shards\/00002\.bin exists with different content/,
    );
  });

  it("re-running a committed round changes nothing", async () => {
    const run = await newRun();
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    const before = await downloadCheckpoint(api, run, 1);
    await stack.orchestrator.aggregate({ runId: run.runId, round: 0 });
    expect((await downloadCheckpoint(api, run, 1)).manifest).toEqual(before.manifest);
    expect((await stack.services.table.getRound(run.runId, 1))?.state).toBe("OPEN");
  });

  it("a step that keeps failing marks the round FAILED with the reason, and the next round reuses the checkpoint", async () => {
    const run = await newRun();
    stack.orchestrator.options.crashAt = (at) => {
      if (at === "aggregated") throw new Error("shard planner unavailable");
    };
    try {
      await uploadRound(api, run);
      await stack.orchestrator.idle();
    } finally {
      stack.orchestrator.options.crashAt = undefined;
    }
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({
      state: "FAILED",
      failureReason: "shard planner unavailable",
    });
    await noRoundPointsAtAnIncompleteCheckpoint(run);
    const next = await stack.services.table.getRound(run.runId, 1);
    expect(next).toMatchObject({ state: "OPEN", baseCheckpoint: 0 });
  });
});

describe("a poisoned round", () => {
  it("whose update leaves weights that are not finite fails, and the next round starts from the same checkpoint", async () => {
    const run = await newRun();
    // Each upload is finite and so is their mean; the checkpoint it moves is not.
    for (const client of run.clients) {
      const coefficients = new Float32Array(run.plan.totalK).fill(3.4e38);
      const reply = await api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=1000000000000`, {
        token: client.token,
        bytes: bytesOf(coefficients),
      });
      expect(reply.status).toBe(202);
    }
    await stack.orchestrator.idle();
    const failed = await stack.services.table.getRound(run.runId, 0);
    expect(failed?.state).toBe("FAILED");
    expect(failed?.failureReason).toMatch(
      /Infinity: the round's uploads are not applied, and checkpoint 0 stays/,
    );
    await noRoundPointsAtAnIncompleteCheckpoint(run);
    expect(await stack.services.table.getRound(run.runId, 1)).toMatchObject({
      state: "OPEN",
      baseCheckpoint: 0,
    });
  });
});

describe("bounded memory per shard task", () => {
  it("splits the checkpoint into at least 8 shards and no task holds more than its shard", async () => {
    const run = await newRun();
    const seen = stack.orchestrator.shardResults.length;
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    const results = stack.orchestrator.shardResults.slice(seen);
    expect(results.length).toBeGreaterThanOrEqual(8);
    const total = model.weights.byteLength;
    for (const shard of results) {
      expect(shard.heldBytes).toBeLessThanOrEqual(shard.length * 4);
      expect(shard.length).toBeLessThanOrEqual(SHARD_PARAMS);
      expect(shard.heldBytes).toBeLessThan(total / 4);
    }
  });
});

// `ferret run create` on a model larger than one multipart part, against the local stack: the parts go up a few at a
// time from the safetensors image (never the whole file in memory), checkpoint 0 is exactly the file
// encodeSafetensors would write, and a client that downloads it several shards at a time gets those bytes back.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, OutcomeUnknownError } from "../../client/api/errors.ts";
import { Http } from "../../client/api/http.ts";
import { ClientApi, OperatorApi } from "../../client/api/routes.ts";
import { Output } from "../../client/cli/output.ts";
import { createRun, type RunOptions, uploadInitialCheckpoint } from "../../client/cli/run.ts";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { loadModelDir, loadModelWeights } from "../../client/participant/model-dir.ts";
import { syncTo } from "../../client/sync/sync.ts";
import { encodeSafetensors } from "../../core/formats/safetensors.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { baseConfig } from "./harness.ts";

const options: RunOptions = {
  strategy: "ferret",
  k: 64,
  clientsPerRound: 1,
  quorum: 1,
  minUploads: 1,
  deadline: 600,
  globalLr: 1,
  localSteps: 1,
  localLr: 0.01,
  batchSize: 1,
  weighting: "examples",
};

let stack: LocalStack;
let dir: string;
let expected: Uint8Array;
beforeAll(async () => {
  // 3.2M parameters: a 12.7 MB file, three 5 MiB parts; 400k-parameter shards make checkpoint 0 several shards.
  stack = await startLocalStack({ threads: 1, shardParams: 400_000 });
  dir = await mkdtemp(join(tmpdir(), "ferret-operator-upload-"));
  await writeSeededModel(dir, gpt2Config({ layers: 4, width: 256, heads: 4, context: 32 }), 3);
  expected = encodeSafetensors((await loadModelWeights(await loadModelDir(dir))).tensors);
});
afterAll(async () => {
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

const operatorApi = () => new OperatorApi(new Http(stack.endpoint), { adminToken: stack.adminToken });

describe("run create over several multipart parts", () => {
  it("commits checkpoint 0 equal byte for byte to encodeSafetensors, and sync downloads those bytes", async () => {
    expect(expected.byteLength).toBeGreaterThan(2 * 5 * 1024 * 1024);
    const api = operatorApi();
    const uploaded: number[] = [];
    let inFlight = 0;
    let peak = 0;
    const upload = api.http.upload.bind(api.http);
    api.http.upload = async (url, bytes) => {
      uploaded.push(bytes.byteLength);
      peak = Math.max(peak, ++inFlight);
      try {
        return await upload(url, bytes);
      } finally {
        inFlight--;
      }
    };
    const created = await createRun(api, new Output(true), dir, options);
    expect(uploaded.length).toBe(3);
    expect(peak).toBeGreaterThan(1); // parts overlap rather than going one after another
    expect(uploaded.reduce((a, b) => a + b, 0)).toBe(expected.byteLength);

    const exported = await api.exportCheckpoint(created.runId, 0);
    const stored = await api.http.download(exported.url);
    expect(Buffer.from(stored).equals(Buffer.from(expected))).toBe(true);

    const client = await api.addClient(created.runId, "downloader");
    await api.start(created.runId);
    const messages: string[] = [];
    const synced = await syncTo(
      new ClientApi(new Http(stack.endpoint), created.runId, client.token),
      created.config.plan,
      undefined,
      0,
      { mode: "download", onProgress: (m) => messages.push(m) },
    );
    expect(synced.result).toMatchObject({ method: "download", checkpoint: 0 });
    const values = Buffer.from(synced.values.buffer, synced.values.byteOffset, synced.values.byteLength);
    const dataStart = 8 + Number(Buffer.from(expected).readBigUInt64LE(0));
    expect(values.equals(Buffer.from(expected.subarray(dataStart)))).toBe(true);
    expect(messages.length).toBeGreaterThan(4); // one per shard
  });

  it("hands out URLs for later parts a page at a time, refusing pages past S3's 10,000 parts", async () => {
    const api = operatorApi();
    const { runId } = await api.createRun({ ...baseConfig, tensors: [{ name: "w", shape: [64] }] });
    const started = await api.startCheckpointUpload(runId, 150);
    expect(started.partUrls).toHaveLength(100);
    const later = await api.checkpointPartUrls(runId, started.uploadId, 101, 50);
    expect(later.map((url) => new URL(url).searchParams.get("partNumber"))).toEqual(
      Array.from({ length: 50 }, (_, i) => String(101 + i)),
    );
    await api.http.upload(later[0] as string, new Uint8Array(16)); // S3 takes a part at a later page's URL
    await expect(api.checkpointPartUrls(runId, started.uploadId, 1, 101)).rejects.toThrow(/count/);
    await expect(api.checkpointPartUrls(runId, started.uploadId, 9_999, 5)).rejects.toThrow(
      /parts 9999..10003: a multipart upload has at most 10000 parts/,
    );
  });

  it("waits for the run's checkpoint 0 when the gateway gives up on a long import, but not after a 500", async () => {
    const gaveUp = (status: number) =>
      new OutcomeUnknownError("POST complete failed", {
        cause: new ApiError(status, "error", "Service Unavailable"),
      });
    const api = operatorApi();
    const complete = api.completeCheckpointUpload.bind(api);
    api.completeCheckpointUpload = async (...args) => {
      await complete(...args); // the import finishes on the server; the operator's reply is lost
      throw gaveUp(503);
    };
    const created = await createRun(api, new Output(true), dir, options);
    expect((await api.status(created.runId)).initialCheckpointReady).toBe(true);

    api.completeCheckpointUpload = async () => {
      throw gaveUp(500);
    };
    await expect(createRun(api, new Output(true), dir, options)).rejects.toThrow(OutcomeUnknownError);
  });

  it("answers an export repeated while it is written with 202, and the client waits for the file", async () => {
    const api = operatorApi();
    const { runId } = await createRun(api, new Output(true), dir, options);
    const now = Date.now();
    // Another call is writing the export for the next 300 ms (in AWS: a Lambda the gateway stopped waiting for).
    expect(await stack.services.table.claimExport(runId, 0, now, now + 300)).toBe(true);
    const repeat = await api.http.json<{ state?: string; url?: string }>(
      "POST",
      `/runs/${runId}/rounds/0/export`,
      {
        token: stack.adminToken,
        idempotent: true,
      },
    );
    expect(repeat).toEqual({ checkpoint: 0, state: "exporting" });
    const waits: number[] = [];
    const exported = await api.exportCheckpoint(runId, 0, { pollMs: 100, onWait: (ms) => waits.push(ms) });
    expect(waits.length).toBeGreaterThan(0);
    const stored = await api.http.download(exported.url);
    expect(Buffer.from(stored).equals(Buffer.from(expected))).toBe(true);
  });

  it("gives back an export's claim when the export fails, so that the next request exports again", async () => {
    const api = operatorApi();
    const { runId } = await createRun(api, new Output(true), dir, options);
    const bucket = stack.services.bucket;
    const write = bucket.putNewFromChunks.bind(bucket);
    bucket.putNewFromChunks = async () => {
      throw new Error("injected: S3 refused the export");
    };
    const path = `/runs/${runId}/rounds/0/export`;
    const failed = await fetch(`${stack.endpoint}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    bucket.putNewFromChunks = write;
    expect(failed.status).toBe(500);
    const exported = await api.exportCheckpoint(runId, 0, { pollMs: 100, waitMs: 1000 });
    expect(Buffer.from(await api.http.download(exported.url)).equals(Buffer.from(expected))).toBe(true);
  });

  it("fails the command when a part fails, without completing the multipart upload", async () => {
    const api = operatorApi();
    let calls = 0;
    const upload = api.http.upload.bind(api.http);
    api.http.upload = (url, bytes) =>
      ++calls === 2 ? Promise.reject(new Error("part refused")) : upload(url, bytes);
    const complete = api.completeCheckpointUpload.bind(api);
    let completed = false;
    api.completeCheckpointUpload = (...args) => {
      completed = true;
      return complete(...args);
    };
    await expect(createRun(api, new Output(true), dir, options)).rejects.toThrow("part refused");
    expect(completed).toBe(false);
  });

  it("lets `run upload` finish a run whose create stopped mid-upload, and refuses another model", async () => {
    const api = operatorApi();
    let runId = "";
    const create = api.createRun.bind(api);
    api.createRun = async (config) => {
      const created = await create(config);
      runId = created.runId;
      return created;
    };
    const upload = api.http.upload.bind(api.http);
    const said: string[] = [];
    const out = new Output(true);
    out.info = (message) => void said.push(message);
    let saidBeforeUpload: string[] = [];
    api.http.upload = () => {
      saidBeforeUpload = [...said];
      return Promise.reject(new Error("link down"));
    };
    await expect(createRun(api, out, dir, options)).rejects.toThrow("link down");
    expect((await api.status(runId)).initialCheckpointReady).toBe(false);
    // A Ctrl-C during the upload ends the process without a catch: the way back was said before it began.
    expect(saidBeforeUpload.join("\n")).toContain(`ferret run upload --run ${runId} --model ${dir}`);

    const other = await mkdtemp(join(tmpdir(), "ferret-other-model-"));
    await writeSeededModel(other, gpt2Config({ layers: 2, width: 256, heads: 4, context: 32 }), 3);
    await expect(uploadInitialCheckpoint(api, new Output(true), runId, other)).rejects.toThrow(
      /is not the model run .* was created from: got \d+ tensors; the plan describes \d+/,
    );
    await rm(other, { recursive: true, force: true });

    api.http.upload = upload;
    const uploaded = await uploadInitialCheckpoint(api, new Output(true), runId, dir);
    expect(uploaded.checkpoint.checkpoint).toBe(0);
    const stored = await api.http.download((await api.exportCheckpoint(runId, 0)).url);
    expect(Buffer.from(stored).equals(Buffer.from(expected))).toBe(true);
    await expect(uploadInitialCheckpoint(api, new Output(true), runId, dir)).rejects.toThrow(
      /already has checkpoint 0/,
    );
  });
});

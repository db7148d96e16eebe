// fedavg on the local stack: clients PUT full updates through presigned URLs and commit them with their SHA-256;
// the new checkpoint must equal a float64 weighted mean computed here, byte for byte. Every refused commit names
// its problem and leaves the table and the bucket as they were; a crashed aggregation re-runs to the same bytes.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitStagedUpdate } from "../../functions/rounds/fedavg.ts";
import { objectKeys } from "../../functions/storage/objects.ts";
import type { RunRecord } from "../../functions/storage/records.ts";
import { Crash } from "../../infra/local/orchestrator.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  bytesOf,
  changes,
  committedCheckpoint,
  createRun,
  listUploads,
  type Run,
  snapshot,
  tinyModel,
  wireLogEntry,
} from "./harness.ts";

const model = tinyModel(
  Array.from({ length: 10 }, (_, i) => ({ name: `transformer.h.${i}.mlp.c_proj.weight`, shape: [12, 16] })),
);
const P = model.weights.length;
const SHARD_PARAMS = 256;
const LEARNING_RATE = 0.75;
const fedavg = {
  strategy: "fedavg",
  totalK: undefined,
  targetBlockSize: 192,
  learningRate: LEARNING_RATE,
} as const;

let stack: LocalStack;
let api: Api;
type Client = Run["clients"][number];

beforeAll(async () => {
  stack = await startLocalStack({ threads: 2, shardParams: SHARD_PARAMS, orchestrator: { attempts: 1 } });
  api = new Api(stack);
});

afterAll(() => stack?.close());

/** Client i's update Δ_i, seeded so the test can recompute it. */
const deltaOf = (i: number) => tinyModel(model.tensors, 200 + i).weights.map((v) => v * 0.05);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function stage(run: Run, client: Client, bytes: Uint8Array, round = 0) {
  const reply = await api.call<{ url: string; key: string; bytes: number; expiresAt: string }>(
    "POST",
    `/runs/${run.runId}/rounds/${round}/update-url`,
    { token: client.token },
  );
  if (reply.status !== 200) throw new Error(`update-url: ${JSON.stringify(reply.body)}`);
  const put = await fetch(reply.body.url, { method: "PUT", body: bytes });
  if (!put.ok) throw new Error(`PUT: ${put.status} ${await put.text()}`);
  return reply.body;
}

const commit = (run: Run, client: Client, sha: string, examples = 10, round = 0) =>
  api.call("POST", `/runs/${run.runId}/rounds/${round}/uploads?examples=${examples}`, {
    token: client.token,
    json: { sha256: sha },
    headers: { "x-ferret-metrics": JSON.stringify({ loss: 1.5 }) },
  });

/** Every selected client stages and commits Δ_i with 10·(i+1) examples. */
async function fullRound(run: Run) {
  const uploads = [];
  for (const [i, client] of run.clients.entries()) {
    const delta = deltaOf(i);
    await stage(run, client, bytesOf(delta));
    const reply = await commit(run, client, sha256(bytesOf(delta)), 10 * (i + 1));
    expect(reply.status, JSON.stringify(reply.body)).toBe(202);
    uploads.push({ clientId: client.clientId, delta, examples: 10 * (i + 1) });
  }
  return uploads;
}

/** w − lr · Σ_i (n_i / Σn) Δ_i, in float64 over clients in id order, rounded once to float32. */
function weightedMean(
  base: Float32Array,
  uploads: { clientId: string; delta: Float32Array; examples: number }[],
) {
  const sorted = [...uploads].sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
  const total = sorted.reduce((n, u) => n + u.examples, 0);
  const sums = new Float64Array(base.length);
  for (const { delta, examples } of sorted) {
    for (let j = 0; j < base.length; j++)
      sums[j] = (sums[j] as number) + (examples / total) * (delta[j] as number);
  }
  return base.map((w, j) => w - LEARNING_RATE * (sums[j] as number));
}

describe("a full fedavg round", () => {
  let run: Run;
  let uploads: Awaited<ReturnType<typeof fullRound>>;
  let seen: number;

  beforeAll(async () => {
    run = await createRun(api, model, fedavg, 3);
    seen = stack.orchestrator.shardResults.length;
    uploads = await fullRound(run);
  });

  it("writes the float64 weighted mean of the committed updates, byte for byte, with a verifying manifest", async () => {
    const { bytes } = await committedCheckpoint(api, run);
    const expected = weightedMean(model.weights, uploads);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(expected)))).toBe(true);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(model.weights)))).toBe(false);
  });

  it("logs the updates with their weights and hashes, and tells clients none of them", async () => {
    const wire = await wireLogEntry(api, run, 0);
    expect(wire).toMatchObject({ strategy: "fedavg", scale: LEARNING_RATE, uploads: 3, coefficients: "" });
    // Another client's id, weight and example count are not a client's to read.
    expect(Object.keys(wire ?? {})).not.toContain("updates");
    expect(Object.keys(wire ?? {})).not.toContain("examples");
    const [entry] = await stack.services.table.getLogEntries(run.runId, 0, 0);
    const total = uploads.reduce((n, u) => n + u.examples, 0);
    expect(entry).toMatchObject({ strategy: "fedavg", examples: total });
    expect(entry?.updates).toEqual(
      [...uploads]
        .sort((a, b) => (a.clientId < b.clientId ? -1 : 1))
        .map((u) => ({ clientId: u.clientId, weight: u.examples / total, sha256: sha256(bytesOf(u.delta)) })),
    );
  });

  it("holds at most 16 bytes per shard parameter in each of at least 8 shard tasks", () => {
    const results = stack.orchestrator.shardResults.slice(seen);
    expect(results.length).toBeGreaterThanOrEqual(8);
    for (const shard of results) {
      // float32 values + one update's float32 range + the float64 sum, whatever the client count.
      expect(shard.heldBytes).toBeLessThanOrEqual(shard.length * 16);
      expect(shard.length).toBeLessThanOrEqual(SHARD_PARAMS);
      expect(shard.heldBytes).toBeLessThan(model.weights.byteLength / 2);
    }
  });
});

describe("refused fedavg requests change nothing", () => {
  let run: Run;
  let ferretRun: Run;
  let selected: Client[];
  let unselected: Client;

  beforeAll(async () => {
    run = await createRun(api, model, { ...fedavg, clientsPerRound: 3, quorum: 3, minUploads: 1 }, 4);
    ferretRun = await createRun(api, model, { totalK: 16, clientsPerRound: 1, quorum: 1, minUploads: 1 }, 1);
    const round = await stack.services.table.getRound(run.runId, 0);
    selected = run.clients.filter((c) => round?.selected.includes(c.clientId));
    unselected = run.clients.find((c) => !round?.selected.includes(c.clientId)) as Client;
  });

  /** Runs `attempt` and expects a 4xx naming `error`, with the table and the bucket unchanged. */
  async function refused(
    attempt: () => Promise<{ status: number; body: unknown }>,
    status: number,
    error: string,
  ) {
    const before = await snapshot(stack);
    const reply = (await attempt()) as { status: number; body: { error: string; message: string } };
    expect(reply.status, reply.body.message).toBe(status);
    expect(reply.body.error).toBe(error);
    expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
    return reply.body.message;
  }

  it.each([
    ["4P − 4 bytes", () => deltaOf(0).subarray(1), "wrong_length", /7676 bytes; expected 1920 float32/],
    ["4P + 4 bytes", () => Float32Array.of(...deltaOf(0), 0), "wrong_length", /7684 bytes/],
    ["a NaN", () => deltaOf(0).fill(Number.NaN, 700, 701), "non_finite", /update value 700 is NaN/],
    ["an Infinity", () => deltaOf(0).fill(-Infinity, P - 1), "non_finite", /update value 1919 is -Infinity/],
  ])("a staged update with %s", async (_, make, error, message) => {
    const client = selected[0] as Client;
    const values = make();
    await stage(run, client, bytesOf(values));
    expect(await refused(() => commit(run, client, sha256(bytesOf(values))), 400, error)).toMatch(message);
  });

  it("an update URL takes only the run's update size: its Content-Length is signed", async () => {
    const client = selected[0] as Client;
    const { url, bytes } = await stage(run, client, bytesOf(deltaOf(0)));
    expect(bytes).toBe(4 * P);
    // S3 refuses a PUT whose Content-Length differs from a signed one; s3rver does not check, so the signature
    // itself is what is shown here.
    expect(new URL(url).searchParams.get("X-Amz-SignedHeaders")?.split(";")).toContain("content-length");
  });

  it("an update whose L2 norm exceeds the run's maxUploadNorm", async () => {
    const limited = await createRun(api, model, { ...fedavg, maxUploadNorm: 0.1 }, 2);
    const client = limited.clients[0] as Client;
    const delta = deltaOf(0);
    const norm = Math.hypot(...delta);
    expect(norm).toBeGreaterThan(0.1);
    await stage(limited, client, bytesOf(delta));
    const message = await refused(
      () => commit(limited, client, sha256(bytesOf(delta))),
      400,
      "norm_exceeded",
    );
    expect(message).toMatch(/the update has L2 norm [\d.]+; this run takes at most 0.1 \(maxUploadNorm\)/);
    const small = delta.map((v) => v / (20 * norm));
    await stage(limited, client, bytesOf(small));
    expect((await commit(limited, client, sha256(bytesOf(small)))).status).toBe(202);
  });

  it("a SHA-256 that does not match the staged bytes", async () => {
    const client = selected[0] as Client;
    await stage(run, client, bytesOf(deltaOf(0)));
    const wrong = sha256(bytesOf(deltaOf(1)));
    expect(await refused(() => commit(run, client, wrong), 400, "sha256_mismatch")).toContain(wrong);
    expect(await refused(() => commit(run, client, "abc"), 400, "invalid_commit")).toMatch(/sha256/);
  });

  it("a commit with nothing staged", async () => {
    const client = selected[1] as Client;
    const key = objectKeys.stagedUpdate(run.runId, 0, client.clientId);
    expect(
      await refused(() => commit(run, client, sha256(new Uint8Array(4))), 400, "update_missing"),
    ).toContain(key);
  });

  it("a fedavg run given octet-stream, and a ferret run given JSON", async () => {
    const client = selected[1] as Client;
    const bytes = bytesOf(new Float32Array(16));
    const octets = () =>
      api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=3`, { token: client.token, bytes });
    expect(await refused(octets, 400, "wrong_content_type")).toContain("application/json");
    const ferretClient = ferretRun.clients[0] as Client;
    const json = () => commit(ferretRun, ferretClient, sha256(bytes));
    expect(await refused(json, 400, "wrong_content_type")).toContain("application/octet-stream");
    const url = () =>
      api.call("POST", `/runs/${ferretRun.runId}/rounds/0/update-url`, { token: ferretClient.token });
    expect(await refused(url, 400, "wrong_strategy")).toContain("fedavg runs only");
  });

  it("an unselected client, for an update URL and for a commit", async () => {
    const url = () => api.call("POST", `/runs/${run.runId}/rounds/0/update-url`, { token: unselected.token });
    expect(await refused(url, 403, "not_selected")).toContain(unselected.clientId);
    expect(
      await refused(() => commit(run, unselected, sha256(new Uint8Array(4))), 403, "not_selected"),
    ).toContain(unselected.clientId);
  });

  it("a second commit or update URL after the client's update was accepted", async () => {
    const client = selected[2] as Client;
    const delta = deltaOf(2);
    await stage(run, client, bytesOf(delta));
    expect((await commit(run, client, sha256(bytesOf(delta)))).status).toBe(202);
    await stage(run, selected[0] as Client, bytesOf(delta)); // the URL still works for others
    const again = () => commit(run, client, sha256(bytesOf(delta)));
    expect(await refused(again, 409, "duplicate_upload")).toContain(client.clientId);
    const url = () => api.call("POST", `/runs/${run.runId}/rounds/0/update-url`, { token: client.token });
    expect(await refused(url, 409, "duplicate_upload")).toContain(client.clientId);
  });
});

describe("fedavg commit after a crash", () => {
  it("a retry finds the update written before the crash; other bytes cannot replace it", async () => {
    const run = await createRun(api, model, { ...fedavg, clientsPerRound: 2, quorum: 2, minUploads: 1 }, 2);
    const client = run.clients[0] as Client;
    const delta = deltaOf(0);
    await stage(run, client, bytesOf(delta));
    // The first attempt wrote the committed object, then died before the upload record.
    const ref = { runId: run.runId, round: 0, clientId: client.clientId };
    const { config } = (await stack.services.table.getRun(run.runId)) as RunRecord;
    await commitStagedUpdate(stack.services, ref, config, sha256(bytesOf(delta)));
    const other = deltaOf(1);
    await stage(run, client, bytesOf(other));
    const before = await snapshot(stack);
    const replaced = await commit(run, client, sha256(bytesOf(other)));
    expect(replaced).toMatchObject({ status: 409, body: { error: "update_committed" } });
    expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
    expect((await commit(run, client, sha256(bytesOf(delta)))).status).toBe(202);
    expect((await listUploads(api, run.runId, 0))[0]?.updateSha256).toBe(sha256(bytesOf(delta)));
    const committed = new Uint8Array(P * 4);
    await stack.services.bucket.readInto(objectKeys.update(run.runId, 0, client.clientId), committed);
    expect(sha256(committed)).toBe(sha256(bytesOf(delta)));
  });
});

describe("fedavg crash recovery", () => {
  it("re-running an aggregation that crashed mid-shards writes the same bytes", async () => {
    const run = await createRun(api, model, { ...fedavg, clientsPerRound: 2, quorum: 2, minUploads: 2 }, 2);
    let crashed = false;
    stack.orchestrator.options.crashAt = (at) => {
      if (at === "shard-1" && !crashed) {
        crashed = true;
        throw new Crash(`injected at ${at}`);
      }
    };
    let uploads: Awaited<ReturnType<typeof fullRound>>;
    try {
      uploads = await fullRound(run);
      await stack.orchestrator.idle();
    } finally {
      stack.orchestrator.options.crashAt = undefined;
    }
    expect(crashed).toBe(true);
    expect((await stack.services.table.getRound(run.runId, 0))?.state).toBe("AGGREGATING");
    await stack.orchestrator.aggregate({ runId: run.runId, round: 0 });
    const { bytes } = await committedCheckpoint(api, run);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(weightedMean(model.weights, uploads))))).toBe(true);
  });
});

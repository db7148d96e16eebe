// One whole round over HTTP: three clients upload coefficients computed with core, the quorum closes the round,
// the worker-thread aggregation writes checkpoint 1, and it must equal core's own reconstruction byte for byte.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http } from "../../client/api/http.ts";
import { ClientApi } from "../../client/api/routes.ts";
import { decodeSafetensors } from "../../core/formats/safetensors.ts";
import { reconstructRange } from "../../core/projection.ts";
import { digestCutBlocks } from "../../functions/rounds/cut-blocks.ts";
import { shardSpecsOf } from "../../functions/rounds/manifest.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  bytesOf,
  createRun,
  downloadCheckpoint,
  expectedCheckpoint,
  manifestMismatches,
  type Run,
  safetensorsOf,
  tensorsOf,
  tinyModel,
  uploadRound,
} from "./harness.ts";

const model = tinyModel([
  { name: "transformer.wte.weight", shape: [32, 16] },
  { name: "transformer.h.0.attn.c_attn.weight", shape: [16, 48] },
  { name: "transformer.h.0.mlp.c_fc.weight", shape: [16, 64] },
  { name: "transformer.ln_f.weight", shape: [16] },
]);

let stack: LocalStack;
let api: Api;
let run: Run;
let expected: Float32Array;

interface Assignment {
  round: number;
  seed: string;
  selected: boolean;
  baseCheckpoint: number;
}

beforeAll(async () => {
  stack = await startLocalStack({ threads: 2, shardParams: 600 });
  api = new Api(stack);
  run = await createRun(api, model, {}, 3);
  for (const client of run.clients) {
    const reply = await api.call<Assignment>("GET", `/runs/${run.runId}/assignment`, { token: client.token });
    expect(reply.body).toMatchObject({
      round: 0,
      selected: true,
      baseCheckpoint: 0,
      coefficients: run.plan.totalK,
    });
    expect(reply.body.seed).toMatch(/^[0-9a-f]{16}$/);
  }
  const { seed, uploads } = await uploadRound(api, run);
  await stack.orchestrator.idle();
  expected = expectedCheckpoint(run, model.weights, seed, uploads);
});

afterAll(() => stack?.close());

describe("a full round on the local stack", () => {
  it("commits round 0 and opens round 1 on checkpoint 1", async () => {
    expect(stack.orchestrator.crashes).toEqual([]);
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({
      state: "DONE",
      resultCheckpoint: 1,
    });
    const next = await api.call<Assignment>("GET", `/runs/${run.runId}/assignment`, {
      token: run.clients[0]?.token,
    });
    expect(next.body).toMatchObject({ round: 1, baseCheckpoint: 1 });
  });

  it("leaves the plan out of an assignment asked for without it, and the client fills in the one it holds", async () => {
    const token = run.clients[0]?.token;
    const full = await api.call<Record<string, unknown>>("GET", `/runs/${run.runId}/assignment`, { token });
    const lean = await api.call<Record<string, unknown>>("GET", `/runs/${run.runId}/assignment?plan=omit`, {
      token,
    });
    expect(full.body.plan).toEqual(run.plan);
    expect(lean.body).toEqual({ ...full.body, plan: undefined });
    expect(JSON.stringify(lean.body).length).toBeLessThan(JSON.stringify(full.body).length);
    const http = new Http(stack.endpoint);
    const asked: string[] = [];
    const json = http.json.bind(http);
    http.json = (method, path, options) => {
      asked.push(path);
      return json(method, path, options);
    };
    const client = new ClientApi(http, run.runId, token as string);
    expect((await client.assignment()).plan).toEqual(run.plan);
    expect((await client.assignment()).plan).toEqual(run.plan);
    expect(asked).toEqual([`/runs/${run.runId}/assignment`, `/runs/${run.runId}/assignment?plan=omit`]);
  });

  it("writes checkpoint 1 equal to core's reconstruction, byte for byte", async () => {
    const { bytes, manifest } = await downloadCheckpoint(api, run, 1);
    expect(manifest.shards.length).toBeGreaterThan(1);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(expected)))).toBe(true);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(model.weights)))).toBe(false);
  });

  it("has a manifest whose per-block and per-shard SHA-256 verify", async () => {
    const { bytes, manifest } = await downloadCheckpoint(api, run, 1);
    expect(manifest.blocks.length).toBe(run.plan.blocks.length);
    expect(manifestMismatches(bytes, manifest)).toEqual([]);
    const tampered = bytes.slice();
    tampered[5] = (tampered[5] as number) ^ 1;
    expect(manifestMismatches(tampered, manifest)).toEqual(["block 0", "shard 0"]);
  });

  it("cuts a block larger than a shard across shards, its digest still over the whole block", async () => {
    const { bytes, manifest } = await downloadCheckpoint(api, run, 1);
    expect(Math.max(...manifest.shards.map((s) => s.length))).toBeLessThanOrEqual(600);
    const cut = manifest.blocks.find((b) => b.size > 600);
    if (!cut) throw new Error("the test model has no block larger than a shard");
    const pieces = manifest.shards.filter((s) => s.start >= cut.start && s.start < cut.start + cut.size);
    expect(pieces.length).toBeGreaterThan(1);
    const last = pieces[pieces.length - 1] as (typeof pieces)[number];
    const tampered = bytes.slice();
    tampered[last.start * 4 + 1] = (tampered[last.start * 4 + 1] as number) ^ 1;
    expect(manifestMismatches(tampered, manifest)).toEqual([`block ${cut.index}`, `shard ${last.index}`]);
  });

  it("hashes a cut block the same in chunks of any size, crossing shards mid-chunk", async () => {
    const { manifest } = await downloadCheckpoint(api, run, 1);
    const shards = shardSpecsOf(manifest, run.plan).map((s, i) => ({
      ...s,
      key: manifest.shards[i]?.key ?? "",
    }));
    const cut = manifest.blocks.filter((b) => b.size > 600);
    for (const chunkBytes of [4, 100, 1000, 1 << 20]) {
      expect(await digestCutBlocks(stack.services, run.plan, shards, chunkBytes)).toEqual(cut);
    }
  });

  it("serves the update-log entry a client replays to reach the same bytes", async () => {
    const reply = await api.call<{
      entries: { round: number; seed: string; scale: number; coefficients: string }[];
    }>("GET", `/runs/${run.runId}/log?from=0&to=0`, { token: run.clients[1]?.token });
    const [entry] = reply.body.entries;
    if (!entry) throw new Error("no log entry");
    const buffer = Buffer.from(entry.coefficients, "base64");
    const coefficients = new Float32Array(
      buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength),
    );
    const replayed = model.weights.slice();
    reconstructRange(replayed, 0, coefficients, BigInt(`0x${entry.seed}`), run.plan, "gaussian", entry.scale);
    expect(Buffer.from(bytesOf(replayed)).equals(Buffer.from(bytesOf(expected)))).toBe(true);
  });

  it("exports checkpoint 1 as one safetensors file with the same tensors", async () => {
    const reply = await api.operator<{ url: string }>("POST", `/runs/${run.runId}/rounds/1/export`);
    expect(reply.status).toBe(200);
    const file = new Uint8Array(await (await fetch(reply.body.url)).arrayBuffer());
    const { tensors } = decodeSafetensors(file);
    expect(tensors).toEqual(tensorsOf(run.plan, expected));
    expect(Buffer.from(file).equals(Buffer.from(safetensorsOf(run.plan, expected)))).toBe(true);
  });

  it("refuses to export a checkpoint that is not committed", async () => {
    const reply = await api.operator("POST", `/runs/${run.runId}/rounds/2/export`);
    expect(reply).toMatchObject({ status: 404, body: { error: "checkpoint_not_found" } });
  });
});

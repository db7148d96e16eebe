// Drives the local stack the way an operator and clients would: over HTTP, with presigned S3 URLs.
import { createHash } from "node:crypto";
import { DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { encodeRequest } from "../../client/api/http.ts";
import { aggregate } from "../../core/aggregate.ts";
import { encodeSafetensors } from "../../core/formats/safetensors.ts";
import type { Plan } from "../../core/plan.ts";
import { project, reconstructRange } from "../../core/projection.ts";
import type { Manifest } from "../../functions/rounds/manifest.ts";
import type { RunConfigInput } from "../../functions/rounds/run-config.ts";
import type { UploadRecord } from "../../functions/storage/records.ts";
import type { LocalStack } from "../../infra/local/stack.ts";

export interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export class Api {
  constructor(readonly stack: LocalStack) {}

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    options: { token?: string; json?: unknown; bytes?: Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<Reply<T>> {
    const { headers, body } = encodeRequest(options);
    const response = await fetch(`${this.stack.endpoint}${path}`, { method, headers, body });
    return { status: response.status, body: (await response.json()) as T };
  }

  operator<T = Record<string, unknown>>(method: string, path: string, json?: unknown) {
    return this.call<T>(method, path, { token: this.stack.adminToken, json });
  }
}

export interface Model {
  tensors: { name: string; shape: number[] }[];
  weights: Float32Array;
}

/** A small model with seeded random weights, laid out as the plan's flat vector. */
export function tinyModel(tensors: { name: string; shape: number[] }[], seed = 1): Model {
  const total = tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const weights = new Float32Array(total);
  let state = seed >>> 0;
  for (let i = 0; i < total; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    weights[i] = (state / 2 ** 32 - 0.5) * 0.2;
  }
  return { tensors, weights };
}

/** The flat vector as named tensors, in plan order. */
export const tensorsOf = (plan: Plan, weights: Float32Array) =>
  plan.tensors.map((t) => ({
    name: t.name,
    shape: t.shape,
    data: weights.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1)),
  }));

/** A checkpoint file as an operator would produce it, written by the client's safetensors encoder. */
export const safetensorsOf = (plan: Plan, weights: Float32Array) =>
  encodeSafetensors(tensorsOf(plan, weights));

export const baseConfig: Omit<RunConfigInput, "tensors"> = {
  basis: "gaussian",
  totalK: 64,
  learningRate: 0.5,
  clientsPerRound: 3,
  quorum: 3,
  minUploads: 2,
  deadlineSeconds: 3600,
  weighting: "examples",
};

export interface Run {
  runId: string;
  plan: Plan;
  clients: { clientId: string; token: string }[];
}

/** Creates a run, uploads checkpoint 0 through presigned multipart, registers clients and starts it. */
export async function createRun(
  api: Api,
  model: Model,
  config: Partial<RunConfigInput>,
  clients: number,
): Promise<Run> {
  const created = await api.operator<{ runId: string; config: { plan: Plan } }>("POST", "/runs", {
    ...baseConfig,
    tensors: model.tensors,
    ...config,
  });
  if (created.status !== 201) throw new Error(`create run: ${JSON.stringify(created.body)}`);
  const { runId, config: stored } = created.body;
  await uploadCheckpoint(api, runId, safetensorsOf(stored.plan, model.weights));
  const registered = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const reply = await api.operator<{ clientId: string; token: string }>(
        "POST",
        `/runs/${runId}/clients`,
        {
          name: `client-${i}`,
        },
      );
      return reply.body;
    }),
  );
  const started = await api.operator("POST", `/runs/${runId}/start`);
  if (started.status !== 200) throw new Error(`start: ${JSON.stringify(started.body)}`);
  return { runId, plan: stored.plan, clients: registered };
}

export async function uploadCheckpoint(
  api: Api,
  runId: string,
  file: Uint8Array,
  partBytes = 5 * 1024 * 1024,
) {
  const parts = Math.max(1, Math.ceil(file.byteLength / partBytes));
  const started = await api.operator<{ uploadId: string; partUrls: string[] }>(
    "POST",
    `/runs/${runId}/checkpoint/uploads`,
    { parts },
  );
  const etags = [];
  for (const [i, url] of started.body.partUrls.entries()) {
    const response = await fetch(url, {
      method: "PUT",
      body: file.subarray(i * partBytes, (i + 1) * partBytes),
    });
    if (!response.ok) throw new Error(`part ${i + 1}: ${response.status} ${await response.text()}`);
    etags.push({ partNumber: i + 1, etag: response.headers.get("etag") as string });
  }
  const done = await api.operator(
    "POST",
    `/runs/${runId}/checkpoint/uploads/${started.body.uploadId}/complete`,
    {
      parts: etags,
    },
  );
  if (done.status !== 200) throw new Error(`import: ${JSON.stringify(done.body)}`);
}

/** Downloads a committed checkpoint through the client route and presigned URLs, as one flat vector. */
export async function downloadCheckpoint(api: Api, run: Run, checkpoint: number) {
  const token = run.clients[0]?.token as string;
  const reply = await api.call<{ manifest: Manifest; shardUrls: string[] }>(
    "GET",
    `/runs/${run.runId}/checkpoints/${checkpoint}`,
    { token },
  );
  if (reply.status !== 200) throw new Error(`download: ${JSON.stringify(reply.body)}`);
  const bytes = new Uint8Array(reply.body.manifest.totalParams * 4);
  for (const [i, url] of reply.body.shardUrls.entries()) {
    const shard = reply.body.manifest.shards[i];
    const data = new Uint8Array(await (await fetch(url)).arrayBuffer());
    bytes.set(data, (shard?.start ?? 0) * 4);
  }
  return { manifest: reply.body.manifest, bytes };
}

/** Every item in the table and every object (key and ETag) in the bucket, to prove a refusal changed nothing. */
export async function snapshot(stack: LocalStack): Promise<string[]> {
  const dynamo = new DynamoDBClient({ endpoint: stack.env.AWS_ENDPOINT_URL_DYNAMODB });
  const items = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await dynamo.send(
      new ScanCommand({
        TableName: stack.env.TABLE_NAME,
        ExclusiveStartKey: start as never,
        ConsistentRead: true,
      }),
    );
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  const s3 = new S3Client({ endpoint: stack.env.AWS_ENDPOINT_URL_S3, forcePathStyle: true });
  const objects = [];
  let token: string | undefined;
  do {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: stack.env.BUCKET_NAME, ContinuationToken: token }),
    );
    objects.push(...(out.Contents ?? []).map((o) => `s3 ${o.Key} ${o.ETag}`));
    token = out.NextContinuationToken;
  } while (token);
  return [...items.map((item) => `table ${JSON.stringify(item)}`), ...objects].sort();
}

/** What differs between two snapshots, shortened so a failure stays readable; both lists empty means unchanged. */
export function changes(before: string[], after: string[]) {
  const short = (line: string) => line.slice(0, 160);
  return {
    added: after.filter((line) => !before.includes(line)).map(short),
    removed: before.filter((line) => !after.includes(line)).map(short),
  };
}

export const bytesOf = (values: Float32Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** Each client uploads coefficients for round 0 computed with core from its own seeded delta; returns the uploads. */
export async function uploadRound(api: Api, run: Run, count = run.clients.length, round = 0) {
  const record = await api.stack.services.table.getRound(run.runId, round);
  const seed = BigInt(`0x${record?.seed}`);
  const uploads = [];
  for (const [i, client] of run.clients.slice(0, count).entries()) {
    const delta = tinyModel(
      run.plan.tensors.map(({ name, shape }) => ({ name, shape })),
      100 + i,
    ).weights.map((v) => v * 0.01);
    const coefficients = project(delta, seed, run.plan, "gaussian");
    const examples = 10 * (i + 1);
    const reply = await api.call("POST", `/runs/${run.runId}/rounds/${round}/uploads?examples=${examples}`, {
      token: client.token,
      bytes: bytesOf(coefficients),
      headers: { "x-ferret-metrics": JSON.stringify({ loss: 2.5 - i / 10 }) },
    });
    if (reply.status !== 202) throw new Error(`upload ${i}: ${JSON.stringify(reply.body)}`);
    uploads.push({ clientId: client.clientId, coefficients, examples });
  }
  return { seed, uploads };
}

/** What checkpoint round+1 must be, computed by core alone. */
export function expectedCheckpoint(
  run: Run,
  base: Float32Array,
  seed: bigint,
  uploads: { clientId: string; coefficients: Float32Array; examples: number }[],
  learningRate = baseConfig.learningRate as number,
): Float32Array {
  const weights = base.slice();
  reconstructRange(weights, 0, aggregate(uploads, "examples"), seed, run.plan, "gaussian", learningRate);
  return weights;
}

export async function eventually<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Checks every block's and shard's SHA-256 in `manifest` against the downloaded bytes; returns the mismatches. */
export function manifestMismatches(bytes: Uint8Array, manifest: Manifest): string[] {
  const sha = (start: number, length: number) =>
    createHash("sha256")
      .update(bytes.subarray(start * 4, (start + length) * 4))
      .digest("hex");
  return [
    ...manifest.blocks.filter((b) => sha(b.start, b.size) !== b.sha256).map((b) => `block ${b.index}`),
    ...manifest.shards.filter((s) => sha(s.start, s.length) !== s.sha256).map((s) => `shard ${s.index}`),
  ];
}

/** Waits for the round's aggregation, then checks it committed cleanly and returns checkpoint round+1. */
export async function committedCheckpoint(api: Api, run: Run, round = 0) {
  await api.stack.orchestrator.idle();
  const record = await api.stack.services.table.getRound(run.runId, round);
  if (record?.state !== "DONE") {
    throw new Error(`round ${round} is ${record?.state}: ${api.stack.orchestrator.crashes.join("; ")}`);
  }
  const download = await downloadCheckpoint(api, run, round + 1);
  const mismatches = manifestMismatches(download.bytes, download.manifest);
  if (mismatches.length > 0) throw new Error(`manifest does not verify: ${mismatches.join(", ")}`);
  return download;
}

/** Round `round`'s update-log entry as a client receives it from GET /runs/{runId}/log. */
export async function wireLogEntry(api: Api, run: Run, round: number) {
  const reply = await api.call<{ entries: Record<string, unknown>[] }>(
    "GET",
    `/runs/${run.runId}/log?from=${round}&to=${round}`,
    { token: run.clients[0]?.token },
  );
  return reply.body.entries[0];
}

/** A round's uploads, all pages of them, in client-id order. */
export async function listUploads(api: Api, runId: string, round: number): Promise<UploadRecord[]> {
  const uploads: UploadRecord[] = [];
  for await (const page of api.stack.services.table.uploadPages(runId, round)) uploads.push(...page);
  return uploads;
}

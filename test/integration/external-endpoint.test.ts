// FERRET_AWS_ENDPOINT mode (the README's LocalStack route): the stack starts no emulators of its own, creates its
// table and bucket at the one endpoint it is given, and every SDK call and presigned URL goes there. LocalStack
// needs Docker, which this machine lacks, so the endpoint here is an edge router in front of DynamoDB Local and
// s3rver that dispatches by SigV4 service, as LocalStack's edge does.
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Emulators, startEmulators } from "../../infra/local/emulators.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { type EdgeEndpoint, startEdgeEndpoint } from "../support/edge-endpoint.ts";
import {
  Api,
  bytesOf,
  createRun,
  downloadCheckpoint,
  expectedCheckpoint,
  manifestMismatches,
  type Run,
  tinyModel,
  uploadRound,
} from "./harness.ts";

const model = tinyModel([
  { name: "transformer.wte.weight", shape: [32, 16] },
  { name: "transformer.h.0.mlp.c_fc.weight", shape: [16, 64] },
  { name: "transformer.ln_f.weight", shape: [16] },
]);
const ENVIRONMENT = ["FERRET_AWS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const;
const saved = Object.fromEntries(ENVIRONMENT.map((name) => [name, process.env[name]]));

let emulators: Emulators;
let edge: EdgeEndpoint;
let stack: LocalStack;
let api: Api;
let run: Run;
let expected: Float32Array;

beforeAll(async () => {
  emulators = await startEmulators("ferret-edge-unused");
  edge = await startEdgeEndpoint({ dynamodb: emulators.endpoint.dynamodb, s3: emulators.endpoint.s3 });
  process.env.FERRET_AWS_ENDPOINT = edge.url;
  // s3rver verifies signatures made with its fixed key pair; LocalStack would accept the default test/test.
  process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  process.env.AWS_SECRET_ACCESS_KEY = "S3RVER";
  stack = await startLocalStack({ threads: 2, shardParams: 600 });
  api = new Api(stack);
  run = await createRun(api, model, {}, 3);
  const { seed, uploads } = await uploadRound(api, run);
  await stack.orchestrator.idle();
  expected = expectedCheckpoint(run, model.weights, seed, uploads);
});

afterAll(async () => {
  await stack?.close();
  await edge?.close();
  await emulators?.stop();
  for (const name of ENVIRONMENT) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

describe("the local stack against one external endpoint (FERRET_AWS_ENDPOINT)", () => {
  it("points both services at that endpoint and creates its table behind it", async () => {
    expect(stack.env.AWS_ENDPOINT_URL_DYNAMODB).toBe(edge.url);
    expect(stack.env.AWS_ENDPOINT_URL_S3).toBe(edge.url);
    const direct = new DynamoDBClient({ endpoint: emulators.endpoint.dynamodb });
    const { TableNames } = await direct.send(new ListTablesCommand({}));
    direct.destroy();
    expect(TableNames).toContain(stack.env.TABLE_NAME);
  });

  it("runs a whole round there: checkpoint 1 equals core's reconstruction and its manifest verifies", async () => {
    expect(stack.orchestrator.crashes).toEqual([]);
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({ state: "DONE" });
    const { bytes, manifest } = await downloadCheckpoint(api, run, 1);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(expected)))).toBe(true);
    expect(manifestMismatches(bytes, manifest)).toEqual([]);
  });

  it("sent the SDK's calls and the presigned transfers through the endpoint, to both services", () => {
    expect(edge.forwarded.get("dynamodb")).toBeGreaterThan(0);
    expect(edge.forwarded.get("s3")).toBeGreaterThan(0);
    expect([...edge.forwarded.keys()].sort()).toEqual(["dynamodb", "s3"]);
  });

  it("refuses, at the endpoint, a request signed for no service it serves", async () => {
    const reply = await fetch(`${edge.url}/anything`, { method: "GET" });
    expect(reply.status).toBe(400);
    expect(await reply.json()).toEqual({ message: "no emulator for service (unsigned request)" });
  });
});

// 200 clients upload into one round at once with quorum 200: each upload is counted once, and exactly one of them
// closes the round and starts the aggregation.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { project } from "../../core/projection.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { Api, bytesOf, createRun, listUploads, type Run, tinyModel } from "./harness.ts";

const CLIENTS = 200;
const model = tinyModel([{ name: "wte", shape: [32, 8] }]);

let stack: LocalStack;
let api: Api;
let run: Run;
let replies: { status: number; body: Record<string, unknown> }[];

beforeAll(async () => {
  stack = await startLocalStack({ threads: 1 });
  api = new Api(stack);
  run = await createRun(
    api,
    model,
    { totalK: 16, clientsPerRound: CLIENTS, quorum: CLIENTS, minUploads: CLIENTS },
    CLIENTS,
  );
  const seed = BigInt(`0x${(await stack.services.table.getRound(run.runId, 0))?.seed}`);
  replies = await Promise.all(
    run.clients.map((client, i) => {
      const delta = tinyModel(model.tensors, i + 7).weights;
      return api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=${i + 1}`, {
        token: client.token,
        bytes: bytesOf(project(delta, seed, run.plan, "gaussian")),
      });
    }),
  );
  await stack.orchestrator.idle();
});

afterAll(() => stack?.close());

describe("200 concurrent uploads with quorum 200", () => {
  it("accepts every upload", () => {
    expect(replies.filter((r) => r.status !== 202).map((r) => r.body)).toEqual([]);
  });

  it("counts each exactly once and stores one item per client", async () => {
    const uploads = await listUploads(api, run.runId, 0);
    expect(uploads.length).toBe(CLIENTS);
    expect(new Set(uploads.map((u) => u.clientId)).size).toBe(CLIENTS);
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({
      uploadCount: CLIENTS,
      state: "DONE",
    });
  });

  it("closes the round and starts aggregation exactly once", async () => {
    expect(replies.filter((r) => r.body.closedRound === true).length).toBe(1);
    expect(stack.orchestrator.started).toEqual([{ runId: run.runId, round: 0 }]);
    const [entry] = await stack.services.table.getLogEntries(run.runId, 0, 0);
    expect(entry).toMatchObject({ uploads: CLIENTS, examples: (CLIENTS * (CLIENTS + 1)) / 2 });
  });
});

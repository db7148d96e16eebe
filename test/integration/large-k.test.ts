// Runs at the largest K (65,536 coefficients, 262 KB an upload). A client many rounds behind replays the update
// log, and one reply cannot hold it all (Lambda answers at most 6 MB; an entry is 350 KB of base64): the server
// stops early and names the next round, and the client's log() follows it. And a round's uploads span several
// DynamoDB pages (1 MB each), which the aggregation sums one page at a time.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http } from "../../client/api/http.ts";
import { ClientApi } from "../../client/api/routes.ts";
import { aggregate } from "../../core/aggregate.ts";
import { MAX_LOG_REPLY_COEFFICIENT_BYTES } from "../../functions/handlers/update-log.ts";
import { MAX_TOTAL_K } from "../../functions/rounds/run-config.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { Api, createRun, listUploads, type Run, tinyModel } from "./harness.ts";

const ENTRY_BASE64_BYTES = 4 * Math.ceil((MAX_TOTAL_K * 4) / 3);
const PER_REPLY = Math.floor(MAX_LOG_REPLY_COEFFICIENT_BYTES / ENTRY_BASE64_BYTES);
const ROUNDS = PER_REPLY + 1;

let stack: LocalStack;
let api: Api;
let run: Run;

beforeAll(async () => {
  stack = await startLocalStack({ threads: 2 });
  api = new Api(stack);
  const model = tinyModel(Array.from({ length: 5 }, (_, i) => ({ name: `h.${i}.w`, shape: [128, 128] })));
  const config = {
    basis: "sketch" as const,
    totalK: MAX_TOTAL_K,
    clientsPerRound: 1,
    quorum: 1,
    minUploads: 1,
  };
  run = await createRun(api, model, config, 1);
  const client = run.clients[0] as { token: string };
  for (let round = 0; round < ROUNDS; round++) {
    const coefficients = Float32Array.from({ length: MAX_TOTAL_K }, (_, i) => ((i * 7 + round) % 13) * 1e-4);
    const reply = await api.call("POST", `/runs/${run.runId}/rounds/${round}/uploads?examples=1`, {
      token: client.token,
      bytes: new Uint8Array(coefficients.buffer),
    });
    if (reply.status !== 202) throw new Error(`round ${round}: ${JSON.stringify(reply.body)}`);
    await stack.orchestrator.idle();
  }
}, 120_000);

afterAll(() => stack?.close());

describe("the update log at K = 65,536", () => {
  it("stops a reply before Lambda's limit and names the round the next one starts at", async () => {
    const reply = await api.call<{ entries: { round: number }[]; next?: number }>(
      "GET",
      `/runs/${run.runId}/log?from=0&to=${ROUNDS - 1}`,
      { token: run.clients[0]?.token },
    );
    expect(reply.status).toBe(200);
    expect(reply.body.entries.map((e) => e.round)).toEqual(Array.from({ length: PER_REPLY }, (_, i) => i));
    expect(reply.body.next).toBe(PER_REPLY);
    expect(JSON.stringify(reply.body).length).toBeLessThan(6 * 1024 * 1024);
  });

  it("is read whole by the client, over as many replies as it takes", async () => {
    const client = new ClientApi(new Http(stack.endpoint), run.runId, run.clients[0]?.token as string);
    const entries = await client.log(0, ROUNDS - 1);
    expect(entries.map((e) => e.round)).toEqual(Array.from({ length: ROUNDS }, (_, i) => i));
    expect(new Set(entries.map((e) => e.coefficients.length))).toEqual(new Set([ENTRY_BASE64_BYTES]));
  });
});

describe("a round's uploads at K = 65,536", () => {
  it("are summed page by page to aggregate()'s bytes", async () => {
    const clients = 6;
    const model = tinyModel(Array.from({ length: 5 }, (_, i) => ({ name: `h.${i}.w`, shape: [128, 128] })));
    const config = {
      basis: "sketch" as const,
      totalK: MAX_TOTAL_K,
      clientsPerRound: clients,
      quorum: clients,
      minUploads: clients,
    };
    const wide = await createRun(api, model, config, clients);
    for (const [i, client] of wide.clients.entries()) {
      const coefficients = Float32Array.from({ length: MAX_TOTAL_K }, (_, k) => Math.sin(k * (i + 1)) * 1e-3);
      const reply = await api.call("POST", `/runs/${wide.runId}/rounds/0/uploads?examples=${i + 1}`, {
        token: client.token,
        bytes: new Uint8Array(coefficients.buffer),
      });
      expect(reply.status).toBe(202);
    }
    await stack.orchestrator.idle();
    let pages = 0;
    for await (const _ of stack.services.table.uploadPages(wide.runId, 0)) pages++;
    expect(pages).toBeGreaterThan(1);
    const [entry] = await stack.services.table.getLogEntries(wide.runId, 0, 0);
    const expected = aggregate(await listUploads(api, wide.runId, 0), "examples");
    expect(Buffer.from(entry?.coefficients.buffer as ArrayBuffer).equals(Buffer.from(expected.buffer))).toBe(
      true,
    );
    expect(entry).toMatchObject({ uploads: clients, examples: (clients * (clients + 1)) / 2 });
  });
});

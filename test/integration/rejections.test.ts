// Every refused upload gets a 4xx JSON error naming the problem, and leaves the table and the bucket as they were:
// each case snapshots both (a full Scan and a listing) before and after.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from "../../core/protocol.ts";
import { MAX_UPLOAD_BYTES } from "../../functions/rounds/run-config.ts";
import { UploadRefused } from "../../functions/storage/upload-transaction.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  baseConfig,
  changes,
  createRun,
  listUploads,
  type Run,
  snapshot,
  tinyModel,
} from "./harness.ts";

const model = tinyModel([
  { name: "wte", shape: [16, 8] },
  { name: "lm_head", shape: [8, 16] },
]);
const K = 32;

let stack: LocalStack;
let api: Api;
let run: Run;
let selected: { clientId: string; token: string }[];
let unselected: { clientId: string; token: string };
let revoked: { clientId: string; token: string };

const upload = (token: string, bytes: Uint8Array, query = "examples=5", round = 0, runId = run.runId) =>
  api.call("POST", `/runs/${runId}/rounds/${round}/uploads?${query}`, { token, bytes });
const coefficients = (fill = 0.25, length = K) => new Uint8Array(new Float32Array(length).fill(fill).buffer);

/** Runs `attempt`, expects the given status and error code, and proves nothing was written. */
async function refused(
  attempt: () => Promise<{ status: number; body: Record<string, unknown> }>,
  status: number,
  error: string,
) {
  const before = await snapshot(stack);
  const reply = await attempt();
  expect(reply.status).toBe(status);
  expect(reply.body.error).toBe(error);
  expect(typeof reply.body.message).toBe("string");
  expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
  return reply.body.message as string;
}

beforeAll(async () => {
  stack = await startLocalStack({ threads: 1 });
  api = new Api(stack);
  run = await createRun(api, model, { totalK: K, clientsPerRound: 4, quorum: 4, minUploads: 1 }, 5);
  const round = await stack.services.table.getRound(run.runId, 0);
  selected = run.clients.filter((c) => round?.selected.includes(c.clientId));
  unselected = run.clients.find((c) => !round?.selected.includes(c.clientId)) as Run["clients"][number];
  revoked = selected.pop() as Run["clients"][number];
  expect((await api.operator("DELETE", `/runs/${run.runId}/clients/${revoked.clientId}`)).status).toBe(200);
});

afterAll(() => stack?.close());

describe("refused uploads change nothing", () => {
  it("a missing or unknown token", async () => {
    await refused(
      () => api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=5`),
      401,
      "unauthorized",
    );
    await refused(() => upload("ferret_not-a-real-token", coefficients()), 403, "forbidden");
  });

  it("a revoked client, at the authorizer and again at the storage transaction", async () => {
    await refused(() => upload(revoked.token, coefficients()), 403, "forbidden");
    const record = {
      runId: run.runId,
      round: 0,
      clientId: revoked.clientId,
      coefficients: new Float32Array(K),
      examples: 1,
      metrics: {},
      receivedAt: new Date().toISOString(),
    };
    const before = await snapshot(stack);
    const error = await stack.services.table.recordUpload(record, Date.now).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UploadRefused);
    expect((error as UploadRefused).refusal.clientRefused).toBe(true);
    expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
  });

  it("an unselected client", async () => {
    const message = await refused(() => upload(unselected.token, coefficients()), 403, "not_selected");
    expect(message).toContain(unselected.clientId);
  });

  it("a wrong length, NaN, Inf, an oversized body, a wrong content type", async () => {
    const token = selected[0]?.token as string;
    expect(await refused(() => upload(token, coefficients(0.25, K - 1)), 400, "wrong_length")).toContain(
      `${K}`,
    );
    expect(await refused(() => upload(token, coefficients(Number.NaN)), 400, "non_finite")).toContain("NaN");
    expect(
      await refused(() => upload(token, coefficients(Number.POSITIVE_INFINITY)), 400, "non_finite"),
    ).toContain("Infinity");
    await refused(() => upload(token, new Uint8Array(MAX_UPLOAD_BYTES + 4)), 413, "payload_too_large");
    await refused(
      () =>
        api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=5`, {
          token,
          bytes: coefficients(),
          headers: { "content-type": "text/plain" },
        }),
      400,
      "wrong_content_type",
    );
  });

  it("a client of another protocol version, or a malformed one", async () => {
    const token = selected[0]?.token as string;
    const stating = (version: string) => () =>
      api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=5`, {
        token,
        bytes: coefficients(),
        headers: { [PROTOCOL_HEADER]: version },
      });
    expect(await refused(stating(String(PROTOCOL_VERSION + 1)), 400, "protocol_mismatch")).toMatch(
      /deploy the backend from the CLI's release/,
    );
    expect(await refused(stating(String(PROTOCOL_VERSION - 1)), 400, "protocol_mismatch")).toMatch(
      /upgrade the ferret CLI/,
    );
    expect(await refused(stating("1.0"), 400, "invalid_protocol")).toContain(String(PROTOCOL_VERSION));
  });

  it("a missing example count, bad metrics, a round that does not exist", async () => {
    const token = selected[0]?.token as string;
    await refused(() => upload(token, coefficients(), ""), 400, "invalid_examples");
    await refused(() => upload(token, coefficients(), "examples=-3"), 400, "invalid_examples");
    await refused(
      () =>
        api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=5`, {
          token,
          bytes: coefficients(),
          headers: { "x-ferret-metrics": '{"loss": "low"}' },
        }),
      400,
      "invalid_metrics",
    );
    await refused(() => upload(token, coefficients(), "examples=5", 7), 404, "round_not_found");
  });

  it("a second upload by the same client", async () => {
    const token = selected[0]?.token as string;
    expect((await upload(token, coefficients())).status).toBe(202);
    const message = await refused(() => upload(token, coefficients(0.5)), 409, "duplicate_upload");
    expect(message).toContain(selected[0]?.clientId);
    expect((await stack.services.table.getRound(run.runId, 0))?.uploadCount).toBe(1);
  });

  it("an upload after the round closed", async () => {
    const quick = await createRun(api, model, { totalK: K, clientsPerRound: 2, quorum: 1, minUploads: 1 }, 2);
    const [first, second] = quick.clients as [Run["clients"][number], Run["clients"][number]];
    expect((await upload(first.token, coefficients(), "examples=5", 0, quick.runId)).status).toBe(202);
    await stack.orchestrator.idle();
    expect((await stack.services.table.getRound(quick.runId, 0))?.state).toBe("DONE");
    await refused(
      () => upload(second.token, coefficients(), "examples=5", 0, quick.runId),
      409,
      "round_closed",
    );
  });

  it("a token used on another run", async () => {
    const other = await api.operator<{ runId: string }>("POST", "/runs", {
      ...baseConfig,
      tensors: model.tensors,
    });
    const message = await refused(
      () => upload(selected[1]?.token as string, coefficients(), "examples=5", 0, other.body.runId),
      403,
      "wrong_run",
    );
    expect(message).toContain(run.runId);
  });
});

describe("a run's upload limits, which bound a client rather than refuse it", () => {
  it("clips coefficients to maxUploadNorm and counts at most maxExamples", async () => {
    const limited = await createRun(
      api,
      model,
      { totalK: K, clientsPerRound: 2, quorum: 2, minUploads: 1, maxUploadNorm: 10, maxExamples: 1000 },
      2,
    );
    const [big, small] = limited.clients as Run["clients"];
    const send = (token: string, fill: number, examples: number) =>
      upload(token, coefficients(fill), `examples=${examples}`, 0, limited.runId);
    // K = 32 entries of 2 have norm √128 ≈ 11.3 and are scaled to norm 10; entries of 1.5 (norm √72) are kept.
    expect((await send(big?.token as string, 2, 5000)).status).toBe(202);
    expect((await send(small?.token as string, 1.5, 10)).status).toBe(202);
    const stored = new Map(
      (await listUploads(api, limited.runId, 0)).map((u) => [
        u.clientId,
        { c: u.coefficients, n: u.examples },
      ]),
    );
    const clipped = stored.get(big?.clientId as string);
    expect(clipped?.n).toBe(1000);
    expect(clipped?.c).toEqual(new Float32Array(K).fill(Math.fround(2 * (10 / Math.sqrt(128)))));
    expect(stored.get(small?.clientId as string)).toEqual({ c: new Float32Array(K).fill(1.5), n: 10 });
    // The two uploads met the quorum: the aggregation must end before other cases snapshot the table.
    await stack.orchestrator.idle();
  });
});

describe("refused operator requests change nothing", () => {
  it("an operator CLI of another protocol version; every reply states the backend's", async () => {
    const create = (headers: Record<string, string>) => () =>
      api.call("POST", "/runs", {
        token: stack.adminToken,
        json: { ...baseConfig, tensors: model.tensors },
        headers,
      });
    await refused(create({ [PROTOCOL_HEADER]: String(PROTOCOL_VERSION + 1) }), 400, "protocol_mismatch");
    for (const headers of [{}, { [PROTOCOL_HEADER]: "0" }] as Record<string, string>[]) {
      const reply = await fetch(`${stack.endpoint}/runs/${run.runId}`, {
        headers: { authorization: `Bearer ${stack.adminToken}`, ...headers },
      });
      expect(reply.headers.get(PROTOCOL_HEADER)).toBe(String(PROTOCOL_VERSION));
    }
  });

  it("a run config whose quorum exceeds clientsPerRound, naming the field", async () => {
    const message = await refused(
      () => api.operator("POST", "/runs", { ...baseConfig, tensors: model.tensors, quorum: 9 }),
      400,
      "invalid_run_config",
    );
    expect(message).toContain("quorum");
  });

  it("an unknown field, a missing learning rate", async () => {
    await refused(
      () => api.operator("POST", "/runs", { ...baseConfig, tensors: model.tensors, colour: "red" }),
      400,
      "invalid_run_config",
    );
    const { learningRate: _omitted, ...noRate } = baseConfig;
    expect(
      await refused(
        () => api.operator("POST", "/runs", { ...noRate, tensors: model.tensors }),
        400,
        "invalid_run_config",
      ),
    ).toContain("learningRate");
  });

  it("no admin token, or a client token in its place", async () => {
    await refused(() => api.call("POST", "/runs", { json: baseConfig }), 403, "forbidden");
    await refused(
      () => api.call("GET", `/runs/${run.runId}`, { token: selected[0]?.token }),
      403,
      "forbidden",
    );
  });

  it("a client name another active client of the run has, until that client is revoked", async () => {
    const add = () =>
      api.operator<{ clientId: string }>("POST", `/runs/${run.runId}/clients`, { name: "twin" });
    const first = await add();
    expect(first.status).toBe(201);
    expect(await refused(add, 409, "name_taken")).toContain(first.body.clientId);
    expect((await api.operator("DELETE", `/runs/${run.runId}/clients/${first.body.clientId}`)).status).toBe(
      200,
    );
    expect((await add()).status).toBe(201);
  });

  it("revoking a client twice, starting an active run", async () => {
    await refused(
      () => api.operator("DELETE", `/runs/${run.runId}/clients/${revoked.clientId}`),
      409,
      "already_revoked",
    );
    await refused(() => api.operator("POST", `/runs/${run.runId}/start`), 409, "already_active");
  });
});

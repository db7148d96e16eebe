// The real client (ClientApi, Http, the loop, LocalTrainer on ONNX Runtime) against the local stack for fedkseed and
// fedavg: two clients train a tiny GPT-2, upload what their strategy sends, and sync to the server's result —
// fedkseed by replaying its log entry on the seed-pool plan, fedavg by downloading — each verified block by block
// against the manifest. The byte counters are what the convergence benchmark reports.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http } from "../../client/api/http.ts";
import { ClientApi, type Strategy } from "../../client/api/routes.ts";
import { modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { type ClientEvent, runClient } from "../../client/participant/loop.ts";
import { StateDir } from "../../client/participant/state.ts";
import { LocalTrainer } from "../../client/participant/trainer.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { TINY_GPT2 } from "../engine/fixtures.ts";
import { Api, createRun } from "./harness.ts";

const config = parseModelConfig(TINY_GPT2);
const tensors = modelTensors(config).map(({ name, shape }) => ({ name, shape }));
const weights = Float32Array.from([...initWeights(config, 5).values()].flatMap((t) => [...t.data]));
const P = weights.length;
const STEPS = 4;

/** Rows of 8 tokens over the 13-token vocabulary, different per client. */
function rows(client: number, count: number) {
  return Array.from({ length: count }, (_, r) => {
    const ids = Array.from({ length: 9 }, (_, t) => (3 * r + 5 * client + t * (client + 2)) % 13);
    return {
      inputIds: Int32Array.from(ids.slice(0, 8)),
      targets: Int32Array.from(ids.slice(1)),
      lossMask: new Float32Array(8).fill(1),
    };
  });
}

let stack: LocalStack;
let dir: string;
beforeAll(async () => {
  stack = await startLocalStack({ threads: 1, shardParams: 700 });
  dir = await mkdtemp(join(tmpdir(), "ferret-strategies-"));
});
afterAll(async () => {
  await stack?.close();
  await rm(dir, { recursive: true, force: true });
});

async function federate(strategy: Strategy, extra: Record<string, unknown>) {
  const api = new Api(stack);
  const run = await createRun(
    api,
    { tensors, weights },
    {
      strategy,
      totalK: undefined,
      learningRate: 1,
      clientsPerRound: 2,
      quorum: 2,
      minUploads: 2,
      localSteps: { steps: STEPS, learningRate: 0.01, batchSize: 2 },
      ...extra,
    },
    2,
  );
  const clients = run.clients.map(async (client, i) => {
    const http = new Http(stack.endpoint);
    const events: ClientEvent[] = [];
    await runClient({
      api: new ClientApi(http, run.runId, client.token),
      state: await StateDir.open(join(dir, `${run.runId}-${i}`), run.runId),
      trainer: (assignment) =>
        LocalTrainer.create(
          config,
          assignment.plan,
          { train: rows(i, 6), eval: rows(i + 7, 2) },
          {
            device: "cpu",
            threads: 1,
            batchSize: assignment.localSteps.batchSize,
          },
        ),
      clientKey: client.clientId,
      sync: "replay",
      pollMs: 50,
      untilCheckpoint: 1,
      emit: (event) => events.push(event),
    });
    return { events, bytes: http.bytes };
  });
  return Promise.all(clients);
}

const only = <E extends ClientEvent["event"]>(events: ClientEvent[], name: E) =>
  events.filter((e): e is Extract<ClientEvent, { event: E }> => e.event === name);

describe("the client against the local stack", () => {
  it("fedkseed: uploads 8 bytes per step and replays the round on the seed pool to the server's bytes", async () => {
    const results = await federate("fedkseed", { zerothOrder: { seedPool: 64, perturbation: 1e-3 } });
    for (const { events } of results) {
      const [uploaded] = only(events, "uploaded");
      expect(uploaded).toMatchObject({ strategy: "fedkseed", coefficients: STEPS, bodyBytes: 32 });
      expect(uploaded?.requestBytes).toBeLessThan(1024); // 32 bytes of pairs in one small request
      expect(only(events, "synced").at(-1)).toMatchObject({ checkpoint: 1, method: "replay", replayed: 1 });
    }
  });

  it("fedavg: PUTs 4P bytes through the presigned URL, commits, and downloads the averaged checkpoint", async () => {
    const results = await federate("fedavg", {});
    for (const { events, bytes } of results) {
      expect(only(events, "uploaded")).toMatchObject([
        { strategy: "fedavg", coefficients: P, bodyBytes: 4 * P },
      ]);
      const [round] = only(events, "round");
      expect(round?.bytesUp).toBeGreaterThan(4 * P);
      const synced = only(events, "synced").at(-1);
      expect(synced).toMatchObject({ checkpoint: 1, method: "download", replayed: 0 });
      expect(synced?.bytesDown).toBeGreaterThan(4 * P);
      expect(bytes.down).toBeGreaterThan(8 * P); // checkpoint 0 and checkpoint 1, both downloaded
    }
  });
});

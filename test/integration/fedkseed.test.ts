// fedkseed on the local stack: clients upload (seed index, scalar gradient) pairs; the new checkpoint must equal
// core's reconstruction on the seed-pool plan byte for byte, and malformed pairs are refused with nothing written.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aggregate } from "../../core/aggregate.ts";
import { reconstruct } from "../../core/projection.ts";
import { seedFromHex } from "../../core/seed.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import { seedPairsBody as pairsBody } from "../support/seed-pairs.ts";
import {
  Api,
  bytesOf,
  changes,
  committedCheckpoint,
  createRun,
  type Run,
  snapshot,
  tinyModel,
  wireLogEntry,
} from "./harness.ts";

const model = tinyModel([
  { name: "transformer.wte.weight", shape: [32, 16] },
  { name: "transformer.h.0.mlp.c_fc.weight", shape: [16, 64] },
  { name: "transformer.ln_f.weight", shape: [16] },
]);
const K = 16;
const GLOBAL_LR = 0.5;
const LOCAL_LR = 0.01;
const fedkseed = {
  strategy: "fedkseed",
  totalK: undefined,
  learningRate: GLOBAL_LR,
  zerothOrder: { seedPool: K, perturbation: 1e-3 },
  localSteps: { steps: 6, learningRate: LOCAL_LR, batchSize: 1 },
} as const;

interface SeedPool {
  seed: string;
  size: number;
  perturbation: number;
}

let stack: LocalStack;
let api: Api;

beforeAll(async () => {
  stack = await startLocalStack({ threads: 2, shardParams: 600 });
  api = new Api(stack);
});

afterAll(() => stack?.close());

/** Client i's T = 6 steps over 5 of the K indices (so steps 0 and 5 share one and its gradients add up). */
const stepsOf = (i: number): [number, number][] =>
  Array.from({ length: 6 }, (_, t) => [(i + t) % 5, (t - 2.5) * (i + 1)]);

const upload = (run: Run, token: string, body: Uint8Array, examples = 8) =>
  api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=${examples}`, { token, bytes: body });

describe("a full fedkseed round", () => {
  let run: Run;
  let pool: SeedPool;
  let expected: Float32Array;

  beforeAll(async () => {
    run = await createRun(api, model, fedkseed, 3);
    const assignment = await api.call<{ strategy: string; seedPool: SeedPool }>(
      "GET",
      `/runs/${run.runId}/assignment`,
      { token: run.clients[0]?.token },
    );
    expect(assignment.body.strategy).toBe("fedkseed");
    expect(assignment.body).not.toHaveProperty("coefficients"); // ferret's count; fedkseed uploads seed pairs
    pool = assignment.body.seedPool;
    const uploads = [];
    for (const [i, client] of run.clients.entries()) {
      const steps = stepsOf(i);
      const reply = await upload(run, client.token, pairsBody(steps), 8 * (i + 1));
      expect(reply.status, JSON.stringify(reply.body)).toBe(202);
      const dense = new Float64Array(K);
      for (const [index, g] of steps) dense[index] = (dense[index] as number) + Math.fround(g);
      uploads.push({
        clientId: client.clientId,
        coefficients: Float32Array.from(dense),
        examples: 8 * (i + 1),
      });
    }
    expected = model.weights.slice();
    const poolPlan = seedPoolPlan(run.plan, K);
    const mean = aggregate(uploads, "examples");
    reconstruct(expected, mean, seedFromHex(pool.seed), poolPlan, "gaussian", GLOBAL_LR * LOCAL_LR);
  });

  it("hands selected clients the run's seed pool", async () => {
    expect(pool).toMatchObject({ size: K, perturbation: 1e-3 });
    expect(pool.seed).toMatch(/^[0-9a-f]{16}$/);
    const round = await stack.services.table.getRound(run.runId, 0);
    expect(pool.seed).not.toBe(round?.seed);
  });

  it("writes core's reconstruction on the seed-pool plan, byte for byte, with a verifying manifest", async () => {
    const { bytes, manifest } = await committedCheckpoint(api, run);
    expect(manifest.shards.length).toBeGreaterThan(1);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(expected)))).toBe(true);
    expect(Buffer.from(bytes).equals(Buffer.from(bytesOf(model.weights)))).toBe(false);
  });

  it("logs K coefficients under the pool seed, gaussian, with scale = global lr × local lr", async () => {
    const entry = await wireLogEntry(api, run, 0);
    expect(entry).toMatchObject({
      strategy: "fedkseed",
      seed: pool.seed,
      basis: "gaussian",
      scale: GLOBAL_LR * LOCAL_LR,
      seedPool: K,
    });
    expect(Buffer.from(entry?.coefficients as string, "base64").byteLength).toBe(K * 4);
    const next = await api.call<{ seedPool: SeedPool }>("GET", `/runs/${run.runId}/assignment`, {
      token: run.clients[0]?.token,
    });
    expect(next.body.seedPool.seed).toBe(pool.seed); // fixed for the whole run
  });
});

describe("refused seed pairs change nothing", () => {
  let run: Run;

  beforeAll(async () => {
    run = await createRun(api, model, { ...fedkseed, clientsPerRound: 1, quorum: 1, minUploads: 1 }, 1);
  });

  it.each([
    [
      "an index ≥ K",
      pairsBody([
        [3, 1],
        [K, 0.5],
      ]),
      "seed_index_out_of_range",
      /pair 1 has seed index 16/,
    ],
    ["a NaN gradient", pairsBody([[2, Number.NaN]]), "non_finite", /gradient NaN/],
    ["a length not a multiple of 8", pairsBody([[1, 1]]).subarray(0, 7), "wrong_length", /7 bytes/],
    ["an empty body", new Uint8Array(0), "wrong_length", /0 bytes/],
  ])("%s", async (_, body, error, message) => {
    const before = await snapshot(stack);
    const reply = await upload(run, run.clients[0]?.token as string, body);
    expect(reply.status).toBe(400);
    expect(reply.body).toMatchObject({ error, message: expect.stringMatching(message) });
    expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
  });
});

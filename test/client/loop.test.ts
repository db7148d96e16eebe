import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../../client/api/errors.ts";
import type { Assignment, Strategy } from "../../client/api/routes.ts";
import {
  type ClientEvent,
  type LoopOptions,
  progressReporter,
  runClient,
  type Trainer,
} from "../../client/participant/loop.ts";
import { StateDir, StateError } from "../../client/participant/state.ts";
import { clientStepRandom } from "../../client/train/zeroth-order.ts";
import { project } from "../../core/projection.ts";
import { deriveRoundSeed, seedToHex } from "../../core/seed.ts";
import { decodeSeedPairs } from "../../core/seed-pool.ts";
import { FakeServer, POOL } from "./fake-server.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferret-loop-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function assignment(
  server: FakeServer,
  round: number,
  state: Assignment["state"],
  strategy: Strategy = "ferret",
): Assignment {
  return {
    strategy,
    ...(strategy === "fedkseed"
      ? { seedPool: { seed: seedToHex(POOL.seed), size: POOL.size, perturbation: POOL.perturbation } }
      : {}),
    runId: "run",
    runStatus: "ACTIVE",
    round,
    state,
    seed: seedToHex(deriveRoundSeed("salt", round)),
    basis: server.family,
    plan: server.plan,
    baseCheckpoint: round,
    selected: true,
    deadline: new Date(Date.now() + 60_000).toISOString(),
    coefficients: server.plan.totalK,
    localSteps: { steps: 3, learningRate: 0.1, batchSize: 2 },
  };
}

/**
 * SGD moves every weight by −0.01 per step: Δ = w_round − w_local = 0.01·steps everywhere. Zeroth-order steps
 * draw their index as the real trainer does and report g = step + 0.5; `zo` keeps the options they got.
 */
function fakeTrainer(calls: { train: number; zo?: Parameters<Trainer["zerothOrderSteps"]>[2] }): Trainer {
  return {
    examples: 5,
    evalLoss: async (values) => values.reduce((a, b) => a + b, 0),
    trainSteps: async (values, _round, steps) => {
      calls.train++;
      for (let i = 0; i < values.length; i++) values[i] = (values[i] as number) - 0.01 * steps;
      return { trainLoss: 1.5 };
    },
    zerothOrderSteps: async (_values, _round, options) => {
      calls.train++;
      calls.zo = options;
      const pairs = Array.from({ length: options.steps }, (_, t) => ({
        index: options.random.nextInt(options.pool.plan.totalK),
        gradient: t + 0.5,
      }));
      return { trainLoss: 2.5, pairs };
    },
  };
}

/** The state directory as the loop of client-a leaves it: claimed by that client. */
async function claimed(client = "client-a"): Promise<StateDir> {
  const state = await StateDir.open(dir, "run");
  await state.claim(client);
  return state;
}

const floats = (bytes: Uint8Array | undefined) =>
  new Float32Array(new Uint8Array(bytes ?? []).buffer.slice(0));

/** Runs the loop against `api` until it holds checkpoint `until` or later; returns what it reached and said. */
async function runUntil(
  api: ReturnType<FakeServer["api"]>,
  state: StateDir,
  until: number,
  calls: Parameters<typeof fakeTrainer>[0] = { train: 0 },
  clientKey = "client-a",
) {
  const events: ClientEvent[] = [];
  const reached = await runClient({
    api: api as unknown as LoopOptions["api"],
    state,
    trainer: async () => fakeTrainer(calls),
    clientKey,
    sync: "replay",
    pollMs: 1,
    untilCheckpoint: until,
    emit: (e) => events.push(e),
  });
  return { reached, events };
}

/** Runs the loop through one round: round 0 OPEN, then DONE (checkpoint 1 committed), then it exits. */
async function run(
  server: FakeServer,
  state: StateDir,
  calls: Parameters<typeof fakeTrainer>[0] = { train: 0 },
  api = server.api([assignment(server, 0, "OPEN"), assignment(server, 0, "DONE")]),
  clientKey = "client-a",
) {
  return (await runUntil(api, state, 1, calls, clientKey)).events;
}

describe("the client loop", () => {
  it("syncs, trains, uploads the projection of w_round − w_local, then syncs to the result", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const state = await StateDir.open(dir, "run");
    const calls = { train: 0 };
    const events = await run(server, state, calls);
    expect(calls.train).toBe(1);
    expect(server.uploads).toHaveLength(1);
    const base = server.checkpoints[0] as Float32Array;
    const local = base.map((w) => w - 0.01 * 3);
    const delta = base.map((w, i) => w - (local[i] as number));
    expect(floats(server.uploads[0]?.body)).toEqual(
      project(delta, deriveRoundSeed("salt", 0), server.plan, "gaussian"),
    );
    expect(events.filter((e) => e.event !== "syncing").map((e) => e.event)).toEqual([
      "synced",
      "eval",
      "training",
      "uploaded",
      "round",
      "synced",
      "eval",
      "done",
    ]);
    expect(state.hasUploaded(0)).toBe(true);
    expect((await state.weights(server.plan.totalParams))?.checkpoint).toBe(1);
  });

  it("asks again when the server answers with a round older than one it has seen (a stale read)", async () => {
    const server = new FakeServer();
    server.runRound(0);
    server.runRound(1);
    const api = server.api([
      assignment(server, 1, "OPEN"),
      assignment(server, 0, "OPEN"),
      assignment(server, 1, "DONE"),
    ]);
    const calls = { train: 0 };
    const { reached, events } = await runUntil(api, await StateDir.open(dir, "run"), 2, calls);
    expect(reached).toBe(2);
    expect(server.uploads.map((u) => u.round)).toEqual([1]);
    expect(calls.train).toBe(1);
    expect(events).toContainEqual({
      event: "waiting",
      reason: "the server answered with round 0, older than round 1; asking again",
    });
  });

  it("stops at the first committed checkpoint past N when N itself was never committed (a failed round)", async () => {
    const server = new FakeServer();
    server.runRound(0);
    server.runRound(1, 2, true);
    server.runRound(2);
    // Round 1 failed, so round 2 started from checkpoint 1 and committed checkpoint 3: there is no checkpoint 2.
    const api = server.api([{ ...assignment(server, 2, "DONE"), baseCheckpoint: 1 }]);
    const state = await StateDir.open(dir, "run");
    const { reached, events } = await runUntil(api, state, 2);
    expect(reached).toBe(3);
    expect(events.at(-1)).toEqual({ event: "done", checkpoint: 3 });
    expect((await state.weights(server.plan.totalParams))?.checkpoint).toBe(3);
  });

  it("after a restart, resends the saved coefficients without training, once", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const first = await claimed();
    const saved = Float32Array.from({ length: server.plan.totalK }, (_, i) => i / 7);
    await first.savePending(0, saved, 5, { trainLoss: 2 });
    const calls = { train: 0 };
    const restarted = await StateDir.open(dir, "run");
    const events = await run(server, restarted, calls);
    expect(calls.train).toBe(0);
    expect(server.uploads.map((u) => floats(u.body))).toEqual([saved]);
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: false });
  });

  it("refuses a state directory another client claimed, sending nothing of its saved upload", async () => {
    const server = new FakeServer();
    server.runRound(0);
    await (await claimed("client-a")).savePending(0, new Float32Array(server.plan.totalK), 5, {});
    const calls = { train: 0 };
    const other = run(server, await StateDir.open(dir, "run"), calls, undefined, "client-b");
    await expect(other).rejects.toThrow(StateError);
    await expect(other).rejects.toThrow(/belongs to another client/);
    expect(server.uploads).toEqual([]);
    expect(calls.train).toBe(0);
  });

  it("passes sync progress on, and says why it downloaded instead of replaying", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const events = await run(server, await StateDir.open(dir, "run"));
    const syncing = events.flatMap((e) => (e.event === "syncing" ? [e.message] : []));
    const shards = server.manifest(0).shards.length;
    expect(syncing[0]).toBe("no checkpoint held locally to replay from; downloading");
    expect(syncing.filter((m) => m.startsWith("downloaded shard "))).toHaveLength(shards);
    expect(syncing.at(-1)).toMatch(/^replayed 1 round\(s\) to checkpoint 1/);
    const synced = events.filter((e) => e.event === "synced");
    expect(synced[0]).toMatchObject({
      method: "download",
      reason: "no checkpoint held locally to replay from",
    });
    expect(synced[1]).toMatchObject({ method: "replay", replayed: 1 });
    expect(synced[1]).not.toHaveProperty("reason");
  });

  it("counts the server's duplicate_upload reply as done (the first send did arrive)", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const saved = Float32Array.from({ length: server.plan.totalK }, () => 0.25);
    server.uploads.push({ round: 0, body: new Uint8Array(saved.buffer) });
    const state = await claimed();
    await state.savePending(0, saved, 5, {});
    const events = await run(server, state);
    expect(server.uploads).toHaveLength(1);
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: true });
    expect(state.current.pending).toBeNull();
    expect(state.hasUploaded(0)).toBe(true);
  });

  it.each([
    [409, "round_closed", "round 0 is AGGREGATING, not OPEN"],
    [400, "norm_exceeded", "the update has L2 norm 12; this run takes at most 10 (maxUploadNorm)"],
  ])("drops an upload the server will never take: %i %s", async (status, code, message) => {
    const server = new FakeServer();
    server.runRound(0);
    const state = await claimed();
    await state.savePending(0, new Float32Array(server.plan.totalK), 5, {});
    const api = server.api([assignment(server, 0, "OPEN"), assignment(server, 0, "DONE")]);
    api.upload = async () => {
      throw new ApiError(status, code, message);
    };
    const events = await run(server, state, { train: 0 }, api);
    expect(events.find((e) => e.event === "skipped")).toMatchObject({
      round: 0,
      reason: expect.stringContaining(message),
    });
    expect(state.current.pending).toBeNull();
    expect(state.hasUploaded(0)).toBe(false);
  });
});

describe("the client loop, per strategy", () => {
  const strategyRun = (server: FakeServer, state: StateDir, strategy: Strategy, calls = { train: 0 }) =>
    run(
      server,
      state,
      calls,
      server.api([assignment(server, 0, "OPEN", strategy), assignment(server, 0, "DONE", strategy)]),
    );

  it("fedkseed: trains on the assignment's pool and uploads one (index, g) pair per step, 8 bytes each", async () => {
    const server = new FakeServer();
    server.runRound(0, 2, false, "fedkseed");
    const state = await StateDir.open(dir, "run");
    const calls: Parameters<typeof fakeTrainer>[0] = { train: 0 };
    const events = await strategyRun(server, state, "fedkseed", calls);
    expect(calls.zo).toMatchObject({ steps: 3, learningRate: 0.1, perturbation: POOL.perturbation });
    expect(calls.zo?.pool.seed).toBe(POOL.seed);
    expect(calls.zo?.pool.plan.blocks).toEqual([
      {
        start: 0,
        size: server.plan.totalParams,
        k: POOL.size,
        tensors: server.plan.tensors.map((t) => t.name),
      },
    ]);
    // Indices come from the client's own generator: seeded by the round seed and this client's key.
    const random = clientStepRandom(seedToHex(deriveRoundSeed("salt", 0)), "client-a");
    const indices = [0, 1, 2].map(() => random.nextInt(POOL.size));
    const body = server.uploads[0]?.body as Uint8Array;
    expect(body.byteLength).toBe(24);
    expect(decodeSeedPairs(body, POOL.size)).toEqual(
      indices.map((index, t) => ({ index, gradient: t + 0.5 })),
    );
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({
      strategy: "fedkseed",
      coefficients: 3,
      bodyBytes: 24,
    });
    // The next checkpoint came from replaying the fedkseed entry on the pool plan, checked against the manifest.
    expect(events.filter((e) => e.event === "synced").at(-1)).toMatchObject({
      method: "replay",
      replayed: 1,
    });
  });

  it("fedavg: PUTs Δ = w_round − w_local as 4P bytes, commits its SHA-256, and counts the PUT as uplink", async () => {
    const server = new FakeServer();
    server.runRound(0, 2, false, "fedavg");
    const state = await StateDir.open(dir, "run");
    const events = await strategyRun(server, state, "fedavg");
    const base = server.checkpoints[0] as Float32Array;
    const delta = base.map((w) => w - Math.fround(w - 0.03));
    expect(floats(server.uploads[0]?.body)).toEqual(delta);
    const P = server.plan.totalParams;
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({
      strategy: "fedavg",
      bodyBytes: 4 * P,
    });
    expect(events.find((e) => e.event === "round")).toMatchObject({ round: 0 });
    const round = events.find((e) => e.event === "round") as { bytesUp: number };
    expect(round.bytesUp).toBeGreaterThanOrEqual(4 * P);
    // A fedavg entry is not replayable: the client downloads checkpoint 1, and says so.
    expect(events.filter((e) => e.event === "synced").at(-1)).toMatchObject({
      method: "download",
      replayed: 0,
      reason: "round 0 averaged full updates (fedavg), which the log does not carry",
    });
    expect(state.current.pending).toBeNull();
  });

  it.each(["fedavg", "fedkseed"] as const)(
    "%s: after a restart, sends the saved body again without training, once",
    async (strategy) => {
      const server = new FakeServer();
      server.runRound(0, 2, false, strategy);
      const size = strategy === "fedavg" ? 4 * server.plan.totalParams : 24;
      const saved = Uint8Array.from({ length: size }, (_, i) => (strategy === "fedavg" ? i % 7 : i % 2));
      await (await claimed()).savePending(0, saved, 5, { trainLoss: 2 });
      const calls = { train: 0 };
      const restarted = await StateDir.open(dir, "run");
      const events = await strategyRun(server, restarted, strategy, calls);
      expect(calls.train).toBe(0);
      expect(server.uploads.map((u) => [...u.body])).toEqual([[...saved]]);
      expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: false });
    },
  );

  it("fedavg: a resend after the commit already landed counts as done (duplicate_upload)", async () => {
    const server = new FakeServer();
    server.runRound(0, 2, false, "fedavg");
    const saved = new Uint8Array(4 * server.plan.totalParams);
    server.uploads.push({ round: 0, body: saved });
    const state = await claimed();
    await state.savePending(0, saved, 5, {});
    const events = await strategyRun(server, state, "fedavg");
    expect(server.uploads).toHaveLength(1);
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: true });
    expect(state.hasUploaded(0)).toBe(true);
  });
});

describe("upload progress", () => {
  const reported = (total: number, chunk: number) => {
    const events: ClientEvent[] = [];
    const report = progressReporter((e) => events.push(e), 4);
    for (let done = chunk; done < total + chunk; done += chunk) report(Math.min(done, total), total);
    return events.map((e) => (e as { bytes: number }).bytes);
  };

  it("reports a large body about every tenth and at its end, a small one not at all", () => {
    const total = 10 * 2 ** 20;
    const marks = reported(total, 65536);
    expect(marks.length).toBeGreaterThanOrEqual(10);
    expect(marks.length).toBeLessThanOrEqual(11);
    expect(marks.at(-1)).toBe(total);
    expect(reported(4096, 1024)).toEqual([]);
  });
});

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../../client/api/http.ts";
import type { Assignment, Strategy } from "../../client/api/routes.ts";
import {
  type ClientEvent,
  type LoopOptions,
  runClient,
  type Trainer,
} from "../../client/participant/loop.ts";
import { StateDir } from "../../client/participant/state.ts";
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

const floats = (bytes: Uint8Array | undefined) =>
  new Float32Array(new Uint8Array(bytes ?? []).buffer.slice(0));

/** Runs the loop through one round: round 0 OPEN, then DONE (checkpoint 1 committed), then it exits. */
async function run(
  server: FakeServer,
  state: StateDir,
  calls: Parameters<typeof fakeTrainer>[0] = { train: 0 },
  api = server.api([assignment(server, 0, "OPEN"), assignment(server, 0, "DONE")]),
) {
  const events: ClientEvent[] = [];
  const options: LoopOptions = {
    api: api as unknown as LoopOptions["api"],
    state,
    trainer: async () => fakeTrainer(calls),
    clientKey: "client-a",
    sync: "replay",
    pollMs: 1,
    untilCheckpoint: 1,
    emit: (e) => events.push(e),
  };
  await runClient(options);
  return events;
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
    expect(events.map((e) => e.event)).toEqual([
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

  it("after a restart, resends the saved coefficients without training, once", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const first = await StateDir.open(dir, "run");
    const saved = Float32Array.from({ length: server.plan.totalK }, (_, i) => i / 7);
    await first.savePending(0, saved, 5, { trainLoss: 2 });
    const calls = { train: 0 };
    const restarted = await StateDir.open(dir, "run");
    const events = await run(server, restarted, calls);
    expect(calls.train).toBe(0);
    expect(server.uploads.map((u) => floats(u.body))).toEqual([saved]);
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: false });
  });

  it("counts the server's duplicate_upload reply as done (the first send did arrive)", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const saved = Float32Array.from({ length: server.plan.totalK }, () => 0.25);
    server.uploads.push({ round: 0, body: new Uint8Array(saved.buffer) });
    const state = await StateDir.open(dir, "run");
    await state.savePending(0, saved, 5, {});
    const events = await run(server, state);
    expect(server.uploads).toHaveLength(1);
    expect(events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true, duplicate: true });
    expect(state.current.pending).toBeNull();
    expect(state.hasUploaded(0)).toBe(true);
  });

  it("drops coefficients the server can no longer take (the round closed meanwhile)", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const state = await StateDir.open(dir, "run");
    await state.savePending(0, new Float32Array(server.plan.totalK), 5, {});
    const api = server.api([assignment(server, 0, "OPEN"), assignment(server, 0, "DONE")]);
    api.upload = async () => {
      throw new ApiError(409, "round_closed", "round 0 is AGGREGATING, not OPEN");
    };
    const events = await run(server, state, { train: 0 }, api);
    expect(events.find((e) => e.event === "skipped")).toMatchObject({ round: 0 });
    expect(state.current.pending).toBeNull();
    expect(state.hasUploaded(0)).toBe(false);
  });
});

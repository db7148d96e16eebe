// SIGINT/SIGTERM abort the loop's signal, and the CLI says "stopping after the current step": the loop must stop
// there (not train every step and upload), and leave a state directory the next start can go on from.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sleep } from "../../client/api/backoff.ts";
import type { Assignment } from "../../client/api/routes.ts";
import {
  type ClientEvent,
  type LoopOptions,
  runClient,
  type Trainer,
} from "../../client/participant/loop.ts";
import { StateDir } from "../../client/participant/state.ts";
import { buildPlan } from "../../core/plan.ts";
import { deriveRoundSeed, seedToHex } from "../../core/seed.ts";
import { FakeServer } from "./fake-server.ts";

const STEPS = 6;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferret-stop-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const assignment = (server: FakeServer, state: Assignment["state"]): Assignment => ({
  strategy: "ferret",
  runId: "run",
  runStatus: "ACTIVE",
  round: 0,
  state,
  seed: seedToHex(deriveRoundSeed("salt", 0)),
  basis: server.family,
  plan: server.plan,
  baseCheckpoint: 0,
  selected: true,
  deadline: new Date(Date.now() + 60_000).toISOString(),
  coefficients: server.plan.totalK,
  localSteps: { steps: STEPS, learningRate: 0.1, batchSize: 2 },
});

/** Runs round 0 (then exits at checkpoint 1), calling `hooks` where the trainer is; `stop` aborts the signal. */
async function run(
  server: FakeServer,
  hooks: { eval?: (stop: () => void) => void; step?: (step: number, stop: () => void) => void },
) {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const events: ClientEvent[] = [];
  let stepsRun = 0;
  const trainer: Trainer = {
    examples: 5,
    evalLoss: async () => {
      hooks.eval?.(stop);
      return 1;
    },
    trainSteps: async (values, _round, steps, _lr, onStep) => {
      for (let step = 0; step < steps; step++) {
        for (let i = 0; i < values.length; i++) values[i] = (values[i] as number) - 0.01;
        stepsRun++;
        hooks.step?.(step, stop);
        onStep?.(step, 1);
      }
      return { trainLoss: 1 };
    },
    zerothOrderSteps: async () => {
      throw new Error("a ferret round takes no zeroth-order steps");
    },
  };
  const state = await StateDir.open(dir, "run");
  const reached = await runClient({
    api: server.api([
      assignment(server, "OPEN"),
      assignment(server, "DONE"),
    ]) as unknown as LoopOptions["api"],
    state,
    clientKey: "client-a",
    trainer: async () => trainer,
    sync: "replay",
    pollMs: 1,
    untilCheckpoint: 1,
    signal: controller.signal,
    emit: (e) => events.push(e),
  });
  return { reached, events, stepsRun, state };
}

describe("stopping the client loop", () => {
  it("stops after the training step in progress, uploads nothing, and keeps w_round as the held weights", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const stopped = await run(server, { step: (step, stop) => step === 1 && stop() });
    expect(stopped.reached).toBe(-1);
    expect(stopped.stepsRun).toBe(2);
    expect(stopped.events.map((e) => e.event)).not.toContain("uploaded");
    expect(server.uploads).toEqual([]);
    const { state } = stopped;
    expect(state.current.pending).toBeNull();
    expect(await state.weights(server.plan.totalParams)).toEqual({
      checkpoint: 0,
      values: server.checkpoints[0],
    });
    // The next start trains the round in full and uploads it once.
    const resumed = await run(server, {});
    expect(resumed.reached).toBe(1);
    expect(resumed.stepsRun).toBe(STEPS);
    expect(server.uploads).toHaveLength(1);
  });

  it("starts no upload once stopped after the last step; the next start sends the saved body", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const stopped = await run(server, {
      step: (step, stop) => {
        if (step === STEPS - 1) stop();
      },
    });
    expect(stopped.reached).toBe(-1);
    expect(server.uploads).toEqual([]);
    expect(stopped.state.current.pending).toMatchObject({ round: 0 });
    const resumed = await run(server, {});
    expect(resumed.stepsRun).toBe(0);
    expect(resumed.events.find((e) => e.event === "uploaded")).toMatchObject({ resent: true });
    expect(server.uploads).toHaveLength(1);
  });

  it("does not start training once stopped during the sync", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const stopped = await run(server, { eval: (stop) => stop() });
    expect(stopped.reached).toBe(-1);
    expect(stopped.stepsRun).toBe(0);
    expect(stopped.events.map((e) => e.event)).not.toContain("training");
    expect((await stopped.state.weights(server.plan.totalParams))?.checkpoint).toBe(0);
  });

  /** Runs a client that is only ever told to wait, and stops it at its first wait (the poll is 10 minutes). */
  async function firstWait(server: FakeServer, told: Assignment) {
    const controller = new AbortController();
    const events: ClientEvent[] = [];
    const reached = await runClient({
      api: server.api([told]) as unknown as LoopOptions["api"],
      state: await StateDir.open(dir, "run"),
      clientKey: "client-a",
      trainer: async () => {
        throw new Error("a client that only waits builds no trainer");
      },
      sync: "replay",
      pollMs: 10 * 60_000,
      signal: controller.signal,
      emit: (e) => {
        events.push(e);
        if (e.event === "waiting") setTimeout(() => controller.abort(), 10);
      },
    });
    return { reached, events };
  }

  it("stops at once while it waits for a round, however long the poll interval", async () => {
    const server = new FakeServer();
    const { reached, events } = await firstWait(server, assignment(server, "AGGREGATING"));
    expect(reached).toBe(-1);
    expect(events).toEqual([{ event: "waiting", reason: "round 0 is AGGREGATING", round: 0 }]);
  });

  it("says, while it waits, that the run is paused", async () => {
    const server = new FakeServer();
    server.runRound(0);
    const { events } = await firstWait(server, { ...assignment(server, "DONE"), runStatus: "PAUSED" });
    expect(events.at(-1)).toEqual({
      event: "waiting",
      reason: "round 0 is DONE; the run is paused until its operator starts it",
      round: 0,
    });
  });

  it("stops at once while several shard downloads wait in backoff for an unreachable store", async () => {
    const layers = Array.from({ length: 12 }, (_, i) => ({ name: `layer${i}.weight`, shape: [8, 4] }));
    const server = new FakeServer(buildPlan(layers, { totalK: 64, targetBlockSize: 32 }));
    const controller = new AbortController();
    const api = server.api([assignment(server, "OPEN")]) as unknown as LoopOptions["api"];
    // Each download waits as Http's backoff does, and ends with the stop's reason when it comes.
    api.http.download = () => sleep(60_000, controller.signal).then(() => new Uint8Array(0));
    setTimeout(() => controller.abort(), 50);
    const reached = await runClient({
      api,
      state: await StateDir.open(dir, "run"),
      clientKey: "client-a",
      trainer: async () => {
        throw new Error("a client stopped during its sync builds no trainer");
      },
      sync: "download",
      pollMs: 1,
      signal: controller.signal,
      emit: () => {},
    });
    expect(reached).toBe(-1);
  });
});

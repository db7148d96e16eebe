// A state change wins its conditional write, then the call dies before the side effect that follows it (starting
// the aggregation, scheduling a deadline, opening the next round). Whatever runs next for that round (a retried
// step, the deadline, a second start) must finish the job: no run may stall on a round nobody will touch again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitRound, failAggregation } from "../../functions/rounds/aggregation.ts";
import { closeAtDeadline, requireRun, resumeRun } from "../../functions/rounds/lifecycle.ts";
import { Crash } from "../../infra/local/orchestrator.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  baseConfig,
  createRun,
  downloadCheckpoint,
  manifestMismatches,
  safetensorsOf,
  tinyModel,
  uploadCheckpoint,
  uploadRound,
} from "./harness.ts";

const model = tinyModel(Array.from({ length: 10 }, (_, i) => ({ name: `h.${i}.w`, shape: [12, 16] })));
const config = { clientsPerRound: 2, quorum: 2, minUploads: 2, targetBlockSize: 192 };

let stack: LocalStack;
let api: Api;

beforeAll(async () => {
  stack = await startLocalStack({ threads: 1, shardParams: 256, orchestrator: { attempts: 1 } });
  api = new Api(stack);
});

afterAll(() => stack?.close());

/**
 * Makes `method` of `target` fail once, after the real call or instead of it. A Crash is a Lambda that died: the
 * local state machine then runs no catch step, as Step Functions does not when a task times out for good.
 */
function failOnce<T extends object, K extends keyof T>(
  target: T,
  method: K,
  afterRealCall: boolean,
  Failure: new (message: string) => Error = Error,
): () => void {
  const real = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
  let failed = false;
  target[method] = (async (...args: unknown[]) => {
    if (failed) return real(...args);
    failed = true;
    if (afterRealCall) await real(...args);
    throw new Failure(`injected: ${String(method)} died`);
  }) as T[K];
  return () => {
    target[method] = real as T[K];
  };
}

/** A run created, without checkpoint or clients. */
async function createdRun() {
  const created = await api.operator<{ runId: string; config: { plan: never } }>("POST", "/runs", {
    ...baseConfig,
    tensors: model.tensors,
    ...config,
  });
  return created.body;
}

const roundOf = (runId: string, round: number) => stack.services.table.getRound(runId, round);
const afterDeadline = async (runId: string, round: number) => {
  const deadline = (await roundOf(runId, round))?.deadline as number;
  return { ...stack.services, now: () => deadline + 1000 };
};

describe("a call that dies after its state change", () => {
  it("commit: the retried step opens the next round the first one never opened", async () => {
    const run = await createRun(api, model, config, 2);
    const restore = failOnce(stack.services.table, "commitRound", true, Crash);
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    restore();
    expect((await roundOf(run.runId, 0))?.state).toBe("DONE");
    expect(await roundOf(run.runId, 1)).toBeUndefined();

    await commitRound(stack.services, { runId: run.runId, round: 0 });
    expect((await roundOf(run.runId, 1))?.state).toBe("OPEN");
    expect((await stack.services.table.getRun(run.runId))?.currentRound).toBe(1);
  });

  it("failing an aggregation: a retry opens the next round on the same checkpoint", async () => {
    const run = await createRun(api, model, config, 2);
    stack.orchestrator.options.crashAt = () => {
      throw new Crash("the aggregation stops before its shards");
    };
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    stack.orchestrator.options.crashAt = undefined;
    const restore = failOnce(stack.services.table, "failRound", true);
    await expect(failAggregation(stack.services, { runId: run.runId, round: 0 }, "gave up")).rejects.toThrow(
      /injected/,
    );
    restore();
    expect(await roundOf(run.runId, 1)).toBeUndefined();

    await failAggregation(stack.services, { runId: run.runId, round: 0 }, "gave up");
    expect((await roundOf(run.runId, 0))?.state).toBe("FAILED");
    expect(await roundOf(run.runId, 1)).toMatchObject({ state: "OPEN", baseCheckpoint: 0 });
  });

  it("the quorum's close: the deadline starts the aggregation that never started", async () => {
    const run = await createRun(api, model, config, 2);
    const restore = failOnce(stack.orchestrator, "startAggregation", false);
    await expect(uploadRound(api, run)).rejects.toThrow(/upload 1/);
    restore();
    expect((await roundOf(run.runId, 0))?.state).toBe("AGGREGATING");

    await closeAtDeadline(await afterDeadline(run.runId, 0), run.runId, 0);
    await stack.orchestrator.idle();
    expect((await roundOf(run.runId, 0))?.state).toBe("DONE");
    expect((await roundOf(run.runId, 1))?.state).toBe("OPEN");
  });

  it("opening a round: the next call for the finished round schedules the deadline that was never scheduled", async () => {
    const run = await createRun(api, model, config, 2);
    const scheduled: number[] = [];
    const orchestrator = stack.orchestrator;
    const schedule = orchestrator.scheduleDeadline.bind(orchestrator);
    orchestrator.scheduleDeadline = async (runId, round, deadline) => {
      if (runId === run.runId && round === 1 && scheduled.length === 0) {
        scheduled.push(-1);
        throw new Crash("injected: the scheduler refused");
      }
      if (runId === run.runId) scheduled.push(round);
      return schedule(runId, round, deadline);
    };
    try {
      await uploadRound(api, run);
      await stack.orchestrator.idle();
      expect((await roundOf(run.runId, 1))?.state).toBe("OPEN");
      expect(scheduled).toEqual([-1]);

      await commitRound(stack.services, { runId: run.runId, round: 0 }); // the state machine's retry
      expect(scheduled).toEqual([-1, 1]);
    } finally {
      orchestrator.scheduleDeadline = schedule;
    }
  });
});

describe("the deadline's fail", () => {
  it("a deadline call lost after its retries: the run's next start closes the round past its deadline", async () => {
    const run = await createRun(api, model, config, 2);
    const late = await afterDeadline(run.runId, 0);
    await resumeRun(late, await requireRun(late, run.runId));
    expect(await roundOf(run.runId, 0)).toMatchObject({
      state: "FAILED",
      failureReason: "deadline passed with 0 of the minimum 2 uploads",
    });
    expect(await roundOf(run.runId, 1)).toMatchObject({ state: "OPEN", baseCheckpoint: 0 });
  });

  it("does not fail a round whose uploads reached the minimum after the deadline handler counted them", async () => {
    // A quorum of 3 keeps the round OPEN with the minimum of 2, so only the count can refuse the fail.
    const wide = { clientsPerRound: 3, quorum: 3, minUploads: 2, targetBlockSize: 192 };
    const short = await createRun(api, model, wide, 3);
    await uploadRound(api, short, 1);
    const shortDeadline = ((await roundOf(short.runId, 0)) as { deadline: number }).deadline;
    expect(await stack.services.table.failAtDeadline(short.runId, 0, shortDeadline + 1, "1 of 2")).toBe(true);

    const reached = await createRun(api, model, wide, 3);
    await uploadRound(api, reached, 1);
    const { deadline } = (await roundOf(reached.runId, 0)) as { deadline: number };
    // The handler read one upload; the second lands before its write.
    await uploadRound(api, { ...reached, clients: reached.clients.slice(1) }, 1);
    expect(await stack.services.table.failAtDeadline(reached.runId, 0, deadline + 1, "1 of 2")).toBe(false);
    expect(await roundOf(reached.runId, 0)).toMatchObject({ state: "OPEN", uploadCount: 2 });
  });
});

describe("a repeated upload", () => {
  it("whose first copy closed the round is a duplicate (it counts), not refused as closed", async () => {
    const run = await createRun(api, model, config, 2);
    const { uploads } = await uploadRound(api, run);
    const { clientId, coefficients } = uploads[uploads.length - 1] as (typeof uploads)[number];
    const client = run.clients.find((c) => c.clientId === clientId) as { token: string };
    const again = await api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=1`, {
      token: client.token,
      bytes: new Uint8Array(coefficients.buffer),
    });
    expect(again).toMatchObject({ status: 409, body: { error: "duplicate_upload" } });
    await stack.orchestrator.idle();
  });
});

describe("starting a run", () => {
  it("without clients is refused and changes nothing; with them it starts", async () => {
    const { runId, config: stored } = await createdRun();
    await uploadCheckpoint(api, runId, safetensorsOf(stored.plan, model.weights));
    const refused = await api.operator("POST", `/runs/${runId}/start`);
    expect(refused).toMatchObject({ status: 409, body: { error: "no_clients" } });
    expect((await stack.services.table.getRun(runId))?.status).toBe("CREATED");

    await api.operator("POST", `/runs/${runId}/clients`, { name: "a" });
    const started = await api.operator("POST", `/runs/${runId}/start`);
    expect(started).toMatchObject({ status: 200, body: { status: "ACTIVE", currentRound: 0 } });
  });
});

describe("the initial checkpoint's import", () => {
  it("refused at a later shard, then given another file: every stored shard matches the manifest", async () => {
    const { runId, config: stored } = await createdRun();
    const poisoned = model.weights.slice();
    poisoned[poisoned.length - 1] = Number.NaN;
    await expect(uploadCheckpoint(api, runId, safetensorsOf(stored.plan, poisoned))).rejects.toThrow(
      /invalid_checkpoint/,
    );
    // What an operator whose request the HTTP API stopped waiting for reads from the run's status.
    expect((await api.operator("GET", `/runs/${runId}`)).body.importFailure).toMatchObject({
      uploadId: expect.any(String),
      status: 409,
      error: "invalid_checkpoint",
      message: expect.stringMatching(/is not finite/),
    });
    const other = tinyModel(model.tensors, 7).weights;
    await uploadCheckpoint(api, runId, safetensorsOf(stored.plan, other));
    const client = (await api.operator<{ token: string }>("POST", `/runs/${runId}/clients`, { name: "a" }))
      .body;
    const run = { runId, plan: stored.plan, clients: [{ clientId: "a", token: client.token }] };
    const { bytes, manifest } = await downloadCheckpoint(api, run, 0);
    expect(manifestMismatches(bytes, manifest)).toEqual([]);
    expect(new Float32Array(bytes.buffer)).toEqual(other);
  });

  it("is refused as invalid, not failed, when shards imported at once each find a non-finite value", async () => {
    const { runId, config: stored } = await createdRun();
    const poisoned = model.weights.map((v, i) => (i % 100 === 0 ? Number.POSITIVE_INFINITY : v));
    await expect(uploadCheckpoint(api, runId, safetensorsOf(stored.plan, poisoned))).rejects.toThrow(
      /invalid_checkpoint.*is not finite/s,
    );
  });
});

describe("the update log", () => {
  it("leaves out a round that failed after its entry was written", async () => {
    const run = await createRun(api, model, config, 2);
    stack.orchestrator.options.crashAt = (at) => {
      if (at === "shard-0") throw new Error("injected: a shard task failed for good");
    };
    await uploadRound(api, run);
    await stack.orchestrator.idle();
    stack.orchestrator.options.crashAt = undefined;
    expect((await roundOf(run.runId, 0))?.state).toBe("FAILED");
    const log = await api.call<{ entries: unknown[] }>("GET", `/runs/${run.runId}/log?from=0&to=5`, {
      token: run.clients[0]?.token,
    });
    expect(log).toMatchObject({ status: 200, body: { entries: [] } });
  });
});

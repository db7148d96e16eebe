// Deadlines: a round short of its quorum closes at the deadline and aggregates what it has if that reaches the
// minimum; below the minimum it FAILS with a reason naming the counts, and the next round opens on the same
// checkpoint with a fresh seed. Uploads after the deadline are refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RoundRecord } from "../../functions/storage/records.ts";
import { type LocalStack, startLocalStack } from "../../infra/local/stack.ts";
import {
  Api,
  bytesOf,
  changes,
  createRun,
  downloadCheckpoint,
  eventually,
  expectedCheckpoint,
  type Run,
  snapshot,
  tinyModel,
  uploadRound,
} from "./harness.ts";

const model = tinyModel([
  { name: "wte", shape: [16, 8] },
  { name: "wpe", shape: [8, 8] },
]);

let stack: LocalStack;
let api: Api;

beforeAll(async () => {
  stack = await startLocalStack({ threads: 1 });
  api = new Api(stack);
});

afterAll(() => stack?.close());

const finished = (runId: string, round: number) => async () => {
  const record = await stack.services.table.getRound(runId, round);
  return record?.state === "DONE" || record?.state === "FAILED" ? record : undefined;
};

/** Waits for the round to end and for what follows it (opening the next round) to be done. */
async function ended(runId: string, round: number): Promise<RoundRecord> {
  const record = await eventually(finished(runId, round), `round ${round} to end`);
  await stack.orchestrator.idle();
  return record;
}

/** Pauses a run with one-second deadlines, waits for its open round to end, and checks no further round opens. */
async function stop(runId: string) {
  expect((await api.operator("POST", `/runs/${runId}/pause`)).status).toBe(200);
  const run = await stack.services.table.getRun(runId);
  const last = run?.currentRound ?? 0;
  await ended(runId, last);
  // Paused: the round that ended is the last one; none opens after it.
  expect((await stack.services.table.getRun(runId))?.currentRound).toBe(last);
  expect(await stack.services.table.getRound(runId, last + 1)).toBeUndefined();
}

describe("a round whose selected client is revoked before it uploads", () => {
  it("waits for one upload fewer, down to its minimum, and closes once those it has meet that", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 3, quorum: 3, minUploads: 1, deadlineSeconds: 3600 },
      3,
    );
    const { seed, uploads } = await uploadRound(api, run, 2);
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({ state: "OPEN", quorum: 3 });
    const late = run.clients[2] as Run["clients"][number];
    const revoked = await api.operator("DELETE", `/runs/${run.runId}/clients/${late.clientId}`);
    expect(revoked.status).toBe(200);
    await stack.orchestrator.idle();
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({
      state: "DONE",
      closeReason: "quorum",
      quorum: 2,
      uploadCount: 2,
    });
    const { bytes } = await downloadCheckpoint(api, run, 1);
    expect(
      Buffer.from(bytes).equals(Buffer.from(bytesOf(expectedCheckpoint(run, model.weights, seed, uploads)))),
    ).toBe(true);
  });

  it("waits for as many as its selected clients can still send: never below the minimum, uploads counted", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 5, quorum: 4, minUploads: 2, deadlineSeconds: 3600 },
      5,
    );
    await uploadRound(api, run, 1);
    const revoke = (client: Run["clients"][number] | undefined) =>
      api.operator("DELETE", `/runs/${run.runId}/clients/${client?.clientId}`);
    const [uploaded, second, third, fourth] = run.clients as Run["clients"];
    const quorum = async () => (await stack.services.table.getRound(run.runId, 0))?.quorum;
    // Five selected, one uploaded: revoking the uploader changes nothing, since its upload still counts.
    await revoke(uploaded);
    expect(await quorum()).toBe(4);
    // Revoking two of the four that could still upload leaves three: the quorum follows them, not one less a time.
    await revoke(second);
    expect(await quorum()).toBe(4);
    await revoke(third);
    expect(await quorum()).toBe(3);
    // A repeat is refused and lowers nothing further; the last revocation stops at the minimum of 2.
    expect((await revoke(third)).status).toBe(409);
    expect(await quorum()).toBe(3);
    await revoke(fourth);
    expect(await stack.services.table.getRound(run.runId, 0)).toMatchObject({
      state: "OPEN",
      quorum: 2,
      uploadCount: 1,
    });
  });
});

describe("a round at its deadline", () => {
  it("with at least the minimum: closes, aggregates the uploads it has, and commits", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 3, quorum: 3, minUploads: 2, deadlineSeconds: 1 },
      3,
    );
    const { seed, uploads } = await uploadRound(api, run, 2);
    const round = await ended(run.runId, 0);
    expect(round).toMatchObject({ state: "DONE", closeReason: "deadline", uploadCount: 2 });
    const { bytes } = await downloadCheckpoint(api, run, 1);
    expect(
      Buffer.from(bytes).equals(Buffer.from(bytesOf(expectedCheckpoint(run, model.weights, seed, uploads)))),
    ).toBe(true);
    await stop(run.runId);
  });

  it("below the minimum: FAILS with the counts, and the next round reuses the checkpoint with a new seed", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 3, quorum: 3, minUploads: 2, deadlineSeconds: 1 },
      3,
    );
    await uploadRound(api, run, 1);
    const round = await ended(run.runId, 0);
    expect(round).toMatchObject({
      state: "FAILED",
      failureReason: "deadline passed with 1 of the minimum 2 uploads",
    });
    expect(await stack.services.table.getLogEntries(run.runId, 0, 0)).toEqual([]);
    const next = await stack.services.table.getRound(run.runId, 1);
    expect(next).toMatchObject({ state: "OPEN", baseCheckpoint: 0 });
    expect(next?.seed).not.toBe(round.seed);
    await stop(run.runId);
  });

  it("refuses an upload once the deadline has passed, before the deadline fires, and changes nothing", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 2, quorum: 2, minUploads: 1, deadlineSeconds: 3600 },
      2,
    );
    const now = stack.services.now;
    stack.services.now = () => now() + 2 * 3600 * 1000;
    try {
      const before = await snapshot(stack);
      const reply = await api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=1`, {
        token: run.clients[0]?.token,
        bytes: new Uint8Array(run.plan.totalK * 4),
      });
      expect(reply).toMatchObject({ status: 409, body: { error: "deadline_passed" } });
      expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
    } finally {
      stack.services.now = now;
    }
  });

  it("a deadline call that arrives early changes nothing, and fails so that Lambda retries it", async () => {
    const run = await createRun(
      api,
      model,
      { clientsPerRound: 2, quorum: 2, minUploads: 1, deadlineSeconds: 3600 },
      2,
    );
    const { handler } = await import("../../functions/handlers/deadline.ts");
    const before = await snapshot(stack);
    await expect(handler({ runId: run.runId, round: 0 }, {} as never)).rejects.toThrow(/before its deadline/);
    expect(changes(before, await snapshot(stack))).toEqual({ added: [], removed: [] });
  });
});

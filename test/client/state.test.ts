import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StateDir, StateError } from "../../client/participant/state.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferret-state-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("client state directory", () => {
  it("keeps the held checkpoint's weights across a restart, and only those", async () => {
    const state = await StateDir.open(dir, "run-1");
    expect(await state.weights(4)).toBeUndefined();
    await state.saveWeights(1, Float32Array.of(1, 2, 3, 4));
    await state.saveWeights(2, Float32Array.of(5, 6, 7, 8));
    const reopened = await StateDir.open(dir, "run-1");
    expect(await reopened.weights(4)).toEqual({ checkpoint: 2, values: Float32Array.of(5, 6, 7, 8) });
    expect((await readdir(dir)).sort()).toEqual(["state.json", "weights-2.f32"]);
  });

  it("treats weights of the wrong size as absent, so the client resyncs", async () => {
    const state = await StateDir.open(dir, "run-1");
    await state.saveWeights(1, Float32Array.of(1, 2, 3, 4));
    await writeFile(join(dir, "weights-1.f32"), new Uint8Array(7));
    expect(await (await StateDir.open(dir, "run-1")).weights(4)).toBeUndefined();
  });

  it("remembers a pending upload until the server acknowledges it", async () => {
    const state = await StateDir.open(dir, "run-1");
    await state.savePending(3, Float32Array.of(0.5, -1), 12, { trainLoss: 2.5 });
    const reopened = await StateDir.open(dir, "run-1");
    expect(reopened.current.pending).toMatchObject({ round: 3, examples: 12, metrics: { trainLoss: 2.5 } });
    expect(await reopened.pendingBody(8)).toEqual(new Uint8Array(Float32Array.of(0.5, -1).buffer));
    expect(await reopened.pendingBody(9)).toBeUndefined(); // another strategy's size: not this body
    await reopened.markUploaded(3);
    const after = await StateDir.open(dir, "run-1");
    expect(after.current.pending).toBeNull();
    expect(after.hasUploaded(3)).toBe(true);
    expect(await readdir(dir)).toEqual(["state.json"]);
  });

  it("refuses a directory that belongs to another run, or a damaged state file", async () => {
    await (await StateDir.open(dir, "run-1")).saveWeights(0, Float32Array.of(1));
    await expect(StateDir.open(dir, "run-2")).rejects.toThrow(StateError);
    await writeFile(join(dir, "state.json"), "{not json");
    await expect(StateDir.open(dir, "run-1")).rejects.toThrow(/not JSON/);
  });
});

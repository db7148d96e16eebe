import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../client/cli/output.ts";
import { readFloats, StateDir, StateError } from "../../client/participant/state.ts";
import { assertFlatVectorFits } from "../../client/sync/weights.ts";

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

  it("names files only by whole checkpoint and round numbers, which come from the server", async () => {
    const state = await StateDir.open(dir, "run-1");
    for (const bad of [Number.NaN, -1, 1.5, "../../planted" as unknown as number]) {
      await expect(state.saveWeights(bad, Float32Array.of(1))).rejects.toThrow(StateError);
      await expect(state.savePending(bad, Float32Array.of(1), 1, {})).rejects.toThrow(/whole number/);
    }
    expect(await readdir(dir)).toEqual([]);
    expect(await readdir(join(dir, ".."))).not.toContain("planted.f32");
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

  it("refuses a state file that is JSON but not a state, and one it cannot read, rather than start afresh", async () => {
    for (const text of ["null", "[]", '{"version":1}', '{"version":2,"runId":"run-1"}']) {
      await writeFile(join(dir, "state.json"), text);
      await expect(StateDir.open(dir, "run-1")).rejects.toThrow(/is not a client state/);
    }
    await rm(join(dir, "state.json"));
    await mkdir(join(dir, "state.json"));
    await expect(StateDir.open(dir, "run-1")).rejects.toMatchObject({ code: "EISDIR" });
  });

  it("belongs to the client that claimed it: another client's key is refused, saying whose it is", async () => {
    const state = await StateDir.open(dir, "run-1");
    await state.claim("a".repeat(64));
    await state.savePending(0, Float32Array.of(1), 5, {});
    await state.claim("a".repeat(64)); // the same client, restarted
    const other = await StateDir.open(dir, "run-1");
    const refused = other.claim("b".repeat(64));
    await expect(refused).rejects.toThrow(StateError);
    await expect(refused).rejects.toThrow(
      /belongs to another client of run run-1 \(key a{12}…; this client's is b{12}….*Use another --state directory/,
    );
    expect((await StateDir.open(dir, "run-1")).current.pending).toMatchObject({ round: 0 });
  });

  it("claims a state file written before owners were recorded, dropping the upload it cannot vouch for", async () => {
    const legacy = await StateDir.open(dir, "run-1");
    await legacy.saveWeights(2, Float32Array.of(1, 2));
    await legacy.savePending(3, Float32Array.of(0.5), 5, {});
    await legacy.markUploaded(1);
    expect(JSON.parse(await readFile(join(dir, "state.json"), "utf8"))).not.toHaveProperty("client");
    const state = await StateDir.open(dir, "run-1");
    await state.claim("client-b");
    expect(state.current).toMatchObject({ client: "client-b", pending: null, uploaded: [] });
    await state.saveWeights(3, Float32Array.of(3, 4)); // the claim is written with the first thing kept
    const reopened = await StateDir.open(dir, "run-1");
    expect(reopened.current).toMatchObject({ client: "client-b", pending: null, uploaded: [] });
    expect(await reopened.weights(2)).toEqual({ checkpoint: 3, values: Float32Array.of(3, 4) });
    expect((await readdir(dir)).sort()).toEqual(["state.json", "weights-3.f32"]);
  });

  it("keeps the upload of an unowned state in the directory named after this client", async () => {
    const legacy = await StateDir.open(dir, "run-1");
    await legacy.savePending(3, Float32Array.of(0.5), 5, {});
    await legacy.markUploaded(1);
    const state = await StateDir.open(dir, "run-1");
    await state.claim("client-a", true);
    await state.saveWeights(0, Float32Array.of(1));
    const reopened = await StateDir.open(dir, "run-1");
    expect(reopened.current).toMatchObject({ client: "client-a", pending: { round: 3 }, uploaded: [1] });
    expect(await reopened.pendingFile(4)).toBeDefined();
  });

  it("writes nothing before there is something to keep: a refused client leaves the directory free", async () => {
    const state = await StateDir.open(join(dir, "new", "state"), "wrong-run");
    await state.claim("a".repeat(64)); // the loop claims before it asks the server anything
    expect(await readdir(join(dir, "new", "state"))).toEqual([]);
    await state.removeIfUnused(); // the server refused the client
    expect(await readdir(dir)).toEqual([]);
    // The same path then serves the right run, and another client.
    const right = await StateDir.open(join(dir, "new", "state"), "run-1");
    await right.claim("b".repeat(64));
    await right.saveWeights(0, Float32Array.of(1));
    await right.removeIfUnused();
    const reopened = await StateDir.open(join(dir, "new", "state"), "run-1");
    expect(reopened.current).toMatchObject({ runId: "run-1", client: "b".repeat(64), checkpoint: 0 });
  });

  it("removes only the empty directories it created, never one it found or one holding anything", async () => {
    await (await StateDir.open(dir, "run-1")).removeIfUnused();
    const made = await StateDir.open(join(dir, "parent", "state"), "run-1");
    await writeFile(join(dir, "parent", "another-client.txt"), "x");
    await made.removeIfUnused();
    expect(await readdir(dir)).toEqual(["parent"]);
    expect(await readdir(join(dir, "parent"))).toEqual(["another-client.txt"]);
  });

  it("refuses a path that is a file or lies under one, naming it and saying what was expected", async () => {
    const file = join(dir, "f");
    await writeFile(file, "x");
    await expect(StateDir.open(file, "run-1")).rejects.toThrow(
      new InputError(
        `--state ${file} exists and is not a directory; expected a directory this user can write, or a path ` +
          "where one can be created",
      ),
    );
    await expect(StateDir.open(join(file, "x"), "run-1")).rejects.toThrow(
      /^--state .*f\/x lies under a file; expected/,
    );
    expect(await readFile(file, "utf8")).toBe("x");
  });

  it("removes its temporary file when a write fails, and reports the write's error", async () => {
    const state = await StateDir.open(dir, "run-1");
    await mkdir(join(dir, "weights-1.f32")); // the rename onto it fails
    await expect(state.saveWeights(1, Float32Array.of(1, 2))).rejects.toThrow(/EISDIR|EEXIST|ENOTEMPTY/);
    expect((await readdir(dir)).sort()).toEqual(["weights-1.f32"]);
    expect(state.current.checkpoint).toBeNull();
  });

  it("removes at open what a kill left behind, and nothing that is not its own", async () => {
    const state = await StateDir.open(dir, "run-1");
    await state.saveWeights(2, Float32Array.of(1, 2));
    await state.savePending(3, Float32Array.of(0.5), 5, {});
    const leftovers = [
      "weights-1.f32", // killed between committing weights-2 and removing weights-1
      "pending-2.bin", // killed between markUploaded's commit and its removal
      "weights-3.f32.tmp-4194305", // a write by a process that no longer runs (above Linux's pid_max)
      `state.json.tmp-${process.pid}`, // an earlier process with this id, as a restarted container's
    ];
    const kept = [
      `weights-4.f32.tmp-${process.ppid}`, // a write in progress by a live process
      "notes.txt",
      "weights-final.f32",
      "pending-1.bin.bak",
    ];
    for (const name of [...leftovers, ...kept]) await writeFile(join(dir, name), "x");
    const reopened = await StateDir.open(dir, "run-1");
    expect((await readdir(dir)).sort()).toEqual(
      ["state.json", "weights-2.f32", "pending-3.bin", ...kept].sort(),
    );
    expect(await reopened.weights(2)).toEqual({ checkpoint: 2, values: Float32Array.of(1, 2) });
    expect(await reopened.pendingBody(4)).toEqual(new Uint8Array(Float32Array.of(0.5).buffer));
  });

  it("starts a new directory without the weights or body of a first write that was never committed", async () => {
    await writeFile(join(dir, "weights-0.f32"), new Uint8Array(8));
    const state = await StateDir.open(dir, "run-1");
    expect(await state.weights(2)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it("leaves the directory of another run untouched", async () => {
    await (await StateDir.open(dir, "run-1")).saveWeights(0, Float32Array.of(1));
    await writeFile(join(dir, "weights-7.f32"), "x");
    await expect(StateDir.open(dir, "run-2")).rejects.toThrow(StateError);
    expect((await readdir(dir)).sort()).toEqual(["state.json", "weights-0.f32", "weights-7.f32"]);
  });
});

describe("the saved weights", () => {
  it("are read in place a chunk at a time, whatever the chunk, and a file of another size means resync", async () => {
    const values = Float32Array.from({ length: 10 }, (_, i) => i / 3);
    const path = join(dir, "weights-0.f32");
    await writeFile(path, new Uint8Array(values.buffer));
    for (const chunk of [4, 12, 1 << 30]) expect(await readFloats(path, 10, chunk)).toEqual(values);
    expect(await readFloats(path, 11)).toBeUndefined();
    expect(await readFloats(join(dir, "missing.f32"), 10)).toBeUndefined();
  });

  it("that cannot be read are an error, not a silent download of the whole checkpoint again", async () => {
    await mkdir(join(dir, "weights-0.f32"));
    await expect(readFloats(join(dir, "weights-0.f32"), 10)).rejects.toThrow(/is not a file/);
  });

  it("say to use Node.js 22 for a model whose bytes are beyond Node 20's largest typed array", () => {
    expect(() => assertFlatVectorFits(2 ** 30 + 1, 20)).toThrow(
      /1073741825 parameters \(4294967300 bytes of float32\), and Node.js 20 holds at most 4294967296 bytes in one array: run the client on Node.js 22 or newer/,
    );
    expect(() => assertFlatVectorFits(2 ** 30, 20)).not.toThrow();
    expect(() => assertFlatVectorFits(2 ** 33, 22)).not.toThrow();
  });
});

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { Device } from "../../client/engine/devices.ts";
import { ByteTokenizer, loadTokenizer } from "../../client/formats/tokenizer.ts";
import { parseModelConfig } from "../../client/models/index.ts";
import { pretrain } from "../../client/pretrain/pretrain.ts";
import { mobyDickChapters } from "../support/moby-dick.ts";

// A tiny version of `npm run pretrain`: same code path, fewer and smaller steps.
const tiny = { seed: 7, steps: 15, layers: 1, width: 32, heads: 2, seqLen: 32, batchSize: 4, threads: 1 };
const root = await mkdtemp(join(tmpdir(), "ferret-pretrain-"));
afterAll(() => rm(root, { recursive: true, force: true }));

describe("pretrain", async () => {
  const first = await pretrain({ ...tiny, dir: join(root, "a") });
  const second = await pretrain({ ...tiny, dir: join(root, "b") });
  const digest = async (dir: string) =>
    createHash("sha256")
      .update(await readFile(join(dir, "model.safetensors")))
      .digest("hex");

  it("learns: held-out loss falls from chance (ln 257 ≈ 5.55) by more than one nat", () => {
    expect(first.initialEvalLoss).toBeGreaterThan(5.3);
    expect(first.finalEvalLoss).toBeLessThan(first.initialEvalLoss - 1);
  });

  it("is deterministic by seed with one thread: the same weights byte for byte", async () => {
    expect(await digest(second.dir)).toBe(await digest(first.dir));
  });

  it("writes a complete model directory whose tokenizer.json gives the byte-level ids", async () => {
    const config = parseModelConfig(JSON.parse(await readFile(join(first.dir, "config.json"), "utf8")));
    expect(config.vocabSize).toBe(257);
    const tokenizer = await loadTokenizer(first.dir);
    const text = (mobyDickChapters()[1]?.text ?? "").slice(0, 2000);
    expect(tokenizer.encode(text)).toEqual(new ByteTokenizer().encode(text));
    expect(tokenizer.eosId).toBe(256);
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it("leaves the model directory as it was, and no staging directory, when training fails", async () => {
    const before = await digest(first.dir);
    const badDevice = { ...tiny, dir: first.dir, device: "tpu" as unknown as Device };
    await expect(pretrain(badDevice)).rejects.toThrow(/device must be one of/);
    expect(await digest(first.dir)).toBe(before);
    await expect(access(`${first.dir}.partial`)).rejects.toThrow(/ENOENT/);
  });
});

describe("npm run pretrain's command line", () => {
  const main = fileURLToPath(new URL("../../client/pretrain/main.ts", import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", main, ...args], (error, stdout, stderr) =>
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
      );
    });

  it("prints its usage for --help, and exits 2 with it for an option that cannot work", async () => {
    const [help, malformed, unknown] = await Promise.all([
      run(["--help"]),
      run(["--steps", "abc"]),
      run(["--bogus"]),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run pretrain/);
    expect(malformed).toMatchObject({ code: 2 });
    expect(malformed.stderr).toMatch(/--steps is "abc"; expected a positive integer\nusage:/);
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.stderr).toMatch(/Unknown option '--bogus'/);
  }, 60_000);
});

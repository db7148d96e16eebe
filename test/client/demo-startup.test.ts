// `ferret demo` checks its inputs before it starts the local stack: a mistake stops it at once with its exit code,
// not after minutes of pretraining and rounds.
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "../../client/cli/output.ts";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { start } from "../../client/demo/processes.ts";
import { MAX_TOTAL_K } from "../../functions/rounds/run-config.ts";

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ferret-demo-startup-"));
  await writeSeededModel(
    join(work, "model"),
    gpt2Config({ layers: 1, width: 16, heads: 2, context: 128 }),
    1,
  );
  await writeFile(join(work, "a-file"), "x");
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** The demo on a tiny model, writing under `work`; the checks under test end it before the stack starts. */
const demo = (...args: string[]) =>
  start(
    ["demo", "--clients", "2", "--model", join(work, "model")]
      .concat(["--cache", join(work, "cache"), "--out", join(work, "report")])
      .concat(args),
  ).exit;

describe("ferret demo at startup", () => {
  it("refuses --k above the server's limit, and --chars too few for two rows a client, with exit 2", async () => {
    const [k, chars] = await Promise.all([demo("--k", String(MAX_TOTAL_K + 1)), demo("--chars", "1")]);
    expect(k.code, k.stderr).toBe(EXIT.usage);
    expect(k.stderr).toContain(
      `expected a positive integer of at most ${MAX_TOTAL_K}, got "${MAX_TOTAL_K + 1}"`,
    );
    expect(chars.code, chars.stderr).toBe(EXIT.usage);
    expect(chars.stderr).toMatch(
      /^ferret: --chars 1 gives .+'s client too little text: its text packs into [01] row\(s\) of 128 tokens; at least 2 are needed \(one to train, one to evaluate\); expected a larger --chars\n$/,
    );
  }, 60_000);

  it("exits 3 naming --out, --cache or --model and what each expects, before writing anything", async () => {
    const file = join(work, "a-file");
    const [out, cache, model] = await Promise.all([
      demo("--out", file),
      demo("--cache", join(file, "cache")),
      demo("--model", join(work, "no-model")),
    ]);
    for (const run of [out, cache, model]) expect(run.code, run.stderr).toBe(EXIT.input);
    const writable = "expected a directory this user can write, or a path where one can be created";
    expect(out.stderr).toBe(`ferret: --out ${file} exists and is not a directory; ${writable}\n`);
    expect(cache.stderr).toBe(`ferret: --cache ${join(file, "cache")} lies under a file; ${writable}\n`);
    expect(model.stderr).toMatch(
      /^ferret: --model .*no-model: .*no-model\/config\.json is missing; a model directory holds config\.json/,
    );
    expect(await readdir(join(work, "cache"))).toEqual([]);
  }, 60_000);
});

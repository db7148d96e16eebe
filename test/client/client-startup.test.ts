// `ferret client` checks what it can before it asks the server anything: a mistake in the command line or the
// local inputs stops it at once with its exit code, not once a round has selected it and the checkpoint synced.
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, exitCodeOf, UsageError } from "../../client/cli/output.ts";
import { start } from "../../client/demo/processes.ts";

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ferret-startup-"));
  await mkdir(join(work, "model"));
  const config = { model_type: "gpt2", n_layer: 1, n_head: 2, n_embd: 16, n_positions: 64, vocab_size: 257 };
  await writeFile(join(work, "model", "config.json"), JSON.stringify(config));
  // Enough bytes for two rows of 500 tokens (the model has no tokenizer: one token a byte).
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `line ${i} `.repeat(30) }));
  await writeFile(join(work, "data.jsonl"), lines.join("\n"));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** The client against an endpoint nobody answers: reaching the server at all would end in exit 5. */
const client = (...args: string[]) =>
  start(
    ["client", "--endpoint", "http://127.0.0.1:1", "--run", "r", "--token", "t", "--give-up-after", "1s"]
      .concat(["--model", join(work, "model"), "--state", join(work, "state")])
      .concat(args),
  ).exit;

const data = () => join(work, "data.jsonl");

describe("ferret client at startup", () => {
  it("refuses a --seq-len longer than the model's context with exit 2, and --data naming a directory with 3", async () => {
    const [seqLen, directory] = await Promise.all([
      client("--data", data(), "--seq-len", "500"),
      client("--data", work),
    ]);
    expect(seqLen.code, seqLen.stderr).toBe(EXIT.usage);
    expect(seqLen.stderr).toMatch(
      /^ferret: --seq-len 500 is longer than the model's context: .* has 64 positions, so expected --seq-len 64 or less\n$/,
    );
    expect(directory.code, directory.stderr).toBe(EXIT.input);
    expect(directory.stderr).toBe(`ferret: --data ${work} is a directory; expected a JSONL file\n`);
  }, 60_000);

  it("exits 3 naming the option and what it expects for a missing --data or --model and an unusable --state", async () => {
    const file = join(work, "a-file");
    await writeFile(file, "x");
    const [data_, model, state] = await Promise.all([
      client("--data", join(work, "missing.jsonl")),
      client("--data", data(), "--model", join(work, "no-model")),
      client("--data", data(), "--state", file),
    ]);
    for (const run of [data_, model, state]) expect(run.code, run.stderr).toBe(EXIT.input);
    expect(data_.stderr).toBe(
      `ferret: --data ${join(work, "missing.jsonl")} does not exist; expected a JSONL file\n`,
    );
    expect(model.stderr).toMatch(
      /^ferret: --model .*no-model: .*no-model\/config\.json is missing; a model directory holds config\.json/,
    );
    expect(state.stderr).toBe(
      `ferret: --state ${file} exists and is not a directory; expected a directory this user can write, or a ` +
        "path where one can be created\n",
    );
  }, 60_000);

  it("leaves no state directory behind when the server refuses the client, so the path serves the right run", async () => {
    const server = createServer((_request, response) => {
      response.writeHead(404, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: "run_not_found", message: "no run r" }));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const stateDir = join(work, "refused", "state");
      const refused = await client("--data", data(), "--endpoint", endpoint, "--state", stateDir);
      expect(refused.code, refused.stderr).toBe(EXIT.refused);
      expect(refused.stderr).toMatch(/404 run_not_found: no run r/);
      expect(await readdir(work)).not.toContain("refused");
    } finally {
      server.close();
    }
  }, 60_000);

  it("maps a usage error found after parsing, and a path of the wrong kind, to their exit codes", () => {
    const errno = (code: string) => Object.assign(new Error(code), { code });
    expect(exitCodeOf(new UsageError("x"))).toBe(EXIT.usage);
    expect(exitCodeOf(errno("EISDIR"))).toBe(EXIT.input);
    expect(exitCodeOf(errno("ENOTDIR"))).toBe(EXIT.input);
  });
});

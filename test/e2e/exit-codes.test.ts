// The CLI's exit codes, which scripts rely on (README, `ferret --help`).

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { start } from "../../client/demo/processes.ts";

const run = async (args: string[], env: Record<string, string> = {}) => await start(args, env).exit;

describe("ferret exit codes", () => {
  it("2 for a malformed option, 3 for a missing required setting, 5 when the server stays unreachable", async () => {
    const [usage, input, unreachable] = await Promise.all([
      run(["run", "create", "--model", ".", "--k", "many"]),
      run(["run", "status", "--run", "r"], { FERRET_ENDPOINT: "", FERRET_ADMIN_TOKEN: "" }),
      run(
        ["run", "status", "--run", "r", "--endpoint", "http://127.0.0.1:1", "--admin-token", "t"].concat([
          "--give-up-after",
          "1s",
        ]),
      ),
    ]);
    expect(usage.code, usage.stderr).toBe(2);
    expect(usage.stderr).toMatch(/expected a positive integer, got "many"/);
    expect(input.code, input.stderr).toBe(3);
    expect(input.stderr).toMatch(/--endpoint is required \(or set FERRET_ENDPOINT\)/);
    expect(unreachable.code, unreachable.stderr).toBe(5);
  }, 120_000);

  it("3 for an export to a path no directory can be made at, said before the server is asked", async () => {
    const work = await mkdtemp(join(tmpdir(), "ferret-export-out-"));
    try {
      const file = join(work, "a-file");
      await writeFile(file, "");
      const out = join(file, "sub", "model.safetensors");
      const unwritable = await run([
        ...["run", "export", "--run", "r", "--checkpoint", "1", "--out", out],
        ...["--endpoint", "http://127.0.0.1:1", "--admin-token", "t", "--give-up-after", "10m"],
      ]);
      expect(unwritable.code, unwritable.stderr).toBe(3);
      expect(unwritable.stderr).toContain(`--out ${join(file, "sub")}`);
      expect(unwritable.stderr).not.toContain("retrying");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("ferret client", () => {
  it("exits 130 at once on Ctrl-C while the server is unreachable, not when --give-up-after is spent", async () => {
    const work = await mkdtemp(join(tmpdir(), "ferret-interrupt-"));
    try {
      const model = join(work, "model");
      await writeSeededModel(model, gpt2Config({ layers: 1, width: 16, heads: 2, context: 16 }), 1);
      const data = join(work, "data.jsonl");
      await writeFile(data, `${JSON.stringify({ text: "Call me Ishmael. ".repeat(20) })}\n`);
      const client = start([
        ...["client", "--run", "r", "--token", "t", "--endpoint", "http://127.0.0.1:1"],
        ...["--model", model, "--data", data, "--state", join(work, "state"), "--give-up-after", "10m"],
      ]);
      let stderr = "";
      await new Promise<void>((resolve) => {
        client.child.stderr?.on("data", (chunk: string) => {
          stderr += chunk;
          if (stderr.includes("retrying in")) resolve();
        });
      });
      client.child.kill("SIGINT");
      const finished = await client.exit;
      expect(finished.code, finished.stderr).toBe(130);
      expect(finished.stderr).toContain("stopping after the current step, or now if waiting");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("ferret local up", () => {
  it("exits 2 with the port named when --port is taken, and 3 when Java is missing", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const [inUse, noJava] = await Promise.all([
        run(["local", "up", "--port", String(port)]),
        // No java on PATH (node itself is started by its full path).
        run(["local", "up"], { PATH: "/nonexistent" }),
      ]);
      expect(inUse.code, inUse.stderr).toBe(2);
      expect(inUse.stderr).toContain(`port ${port} on 127.0.0.1 is in use`);
      expect(noJava.code, noJava.stderr).toBe(3);
      expect(noJava.stderr).toMatch(/needs Java 17 or newer/);
      expect(noJava.stderr).not.toMatch(/\n\s+at /);
    } finally {
      taken.close();
    }
  }, 60_000);
});

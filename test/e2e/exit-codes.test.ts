// The CLI's exit codes, which scripts rely on (README, `ferret --help`).

import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
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

// The CLI's exit codes, which scripts rely on (README, `ferret --help`).
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

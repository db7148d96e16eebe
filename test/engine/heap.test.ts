import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  HEAP_TUNING_SWITCH,
  TRAINING_HEAP_TUNABLES,
  tunedHeapEnvironment,
} from "../../client/engine/heap.ts";

const TUNED = TRAINING_HEAP_TUNABLES.join(":");

describe("tunedHeapEnvironment", () => {
  it("adds the training tunables after any others the user set", () => {
    expect(tunedHeapEnvironment({ PATH: "/bin" })).toEqual({ PATH: "/bin", GLIBC_TUNABLES: TUNED });
    expect(tunedHeapEnvironment({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" })?.GLIBC_TUNABLES).toBe(
      `glibc.malloc.arena_max=2:${TUNED}`,
    );
  });

  it("keeps the user's own value of a training tunable and adds the rest", () => {
    expect(
      tunedHeapEnvironment({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0:glibc.malloc.trim_threshold=0" })
        ?.GLIBC_TUNABLES,
    ).toBe("glibc.malloc.hugetlb=0:glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold=33554432");
  });

  it("leaves a process that has every one of them, or has tuning switched off, as it is", () => {
    // Re-executing a process that already has them would never end.
    expect(tunedHeapEnvironment({ GLIBC_TUNABLES: TUNED })).toBeUndefined();
    const reordered = [...TRAINING_HEAP_TUNABLES].reverse().join(":");
    expect(tunedHeapEnvironment({ GLIBC_TUNABLES: reordered })).toBeUndefined();
    expect(tunedHeapEnvironment({ [HEAP_TUNING_SWITCH]: "0" })).toBeUndefined();
  });
});

const glibc = Boolean(
  (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    ?.glibcVersionRuntime,
);
const canExecve = typeof (process as { execve?: unknown }).execve === "function";

// Node 20 has no process.execve; there a training command runs untuned, which the first test pins down.
describe("tune-heap.ts", () => {
  const script = join(tmpdir(), `ferret-heap-${process.pid}.mjs`);
  afterAll(() => rmSync(script, { force: true }));
  const run = (env: NodeJS.ProcessEnv) => {
    writeFileSync(
      script,
      `await import(${JSON.stringify(join(process.cwd(), "client/engine/tune-heap.ts"))});\n` +
        "console.log(JSON.stringify({ pid: process.pid, tunables: process.env.GLIBC_TUNABLES ?? null, args: process.argv.slice(2) }));\n",
    );
    const out = spawnSync(process.execPath, ["--import", "tsx", script, "--flag", "x"], {
      env: { ...process.env, GLIBC_TUNABLES: "", ...env },
      encoding: "utf8",
    });
    expect(out.status, out.stderr).toBe(0);
    const seen = JSON.parse(out.stdout) as { pid: number; tunables: string | null; args: string[] };
    // In place: the process spawned is the one that printed, so its parent's signals and exit status reach it.
    expect(seen.pid).toBe(out.pid);
    return seen;
  };

  it.runIf(!canExecve || !glibc)("runs the command as it is where it cannot re-execute", () => {
    expect(run({}).tunables).toBe("");
  });

  it.runIf(canExecve && glibc)("re-executes the command in place with the tunables and its arguments", () => {
    const tuned = run({});
    expect(tuned.tunables).toBe(TUNED);
    expect(tuned.args).toEqual(["--flag", "x"]);
    expect(run({ [HEAP_TUNING_SWITCH]: "0" }).tunables).toBe("");
  });
});

// `npm run local` stopped by a signal, then signalled again while it stops (a double Ctrl-C, or a supervisor that
// signals the process group while tsx relays it): the process must still finish stopping, so that DynamoDB
// Local's JVM does not outlive it.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** Resolves once the child's stdout has printed `text`. */
function printed(child: ChildProcess, text: string): Promise<void> {
  let seen = "";
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (chunk) => {
      seen += String(chunk);
      if (seen.includes(text)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`exited (${code}) before printing "${text}": ${seen}`)));
  });
}

/** The pid of `parent`'s java child, from /proc (Linux): the field after the command name is the parent pid. */
function javaChildOf(parent: number): number {
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // that process ended between the listing and the read
    }
    const [command, parentPid] = [
      stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1],
    ];
    if (command === "java" && Number(parentPid) === parent) return Number(entry);
  }
  throw new Error(`process ${parent} has no java child`);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("the local stack's stop", () => {
  it("finishes on a second SIGTERM during the stop, and leaves no DynamoDB Local behind", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "infra/local/main.ts"], {
      cwd: root,
      stdio: ["ignore", "pipe", "ignore"],
    });
    let jvm = 0;
    try {
      await printed(child, "Ferret local stack ready");
      jvm = javaChildOf(child.pid as number);
      expect(alive(jvm)).toBe(true);
      const exited = once(child, "exit");
      const stopping = printed(child, "stopping…");
      child.kill("SIGTERM");
      await stopping;
      child.kill("SIGTERM");
      const [code] = await exited;
      expect(code).toBe(0);
      for (let wait = 0; wait < 50 && alive(jvm); wait++) await new Promise((r) => setTimeout(r, 100));
      expect(alive(jvm)).toBe(false);
    } finally {
      child.kill("SIGKILL");
      if (jvm > 0 && alive(jvm)) process.kill(jvm, "SIGKILL"); // only when the test failed
    }
  }, 90_000);
});

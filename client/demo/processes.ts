// Runs the real `ferret` executable as child processes and reads their JSON lines (the demo and the e2e test).
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const FERRET = fileURLToPath(new URL("../../bin/ferret.mjs", import.meta.url));

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  /** Resolves with the first JSON line on stdout that `match` accepts. */
  waitFor<T = Record<string, unknown>>(match: (event: T) => boolean): Promise<T>;
  exit: Promise<Finished>;
  events(): Record<string, unknown>[];
}

export function start(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [FERRET, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (e: never) => boolean; resolve: (e: never) => void }[] = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    const complete = stdout.split("\n").slice(0, -1);
    for (const line of complete.slice(lines.length)) {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line);
      } catch {
        event = { text: line };
      }
      lines.push(event);
      for (const w of waiters.splice(0)) {
        if (w.match(event as never)) w.resolve(event as never);
        else waiters.push(w);
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exit = new Promise<Finished>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    child,
    exit,
    events: () => lines,
    waitFor<T>(match: (event: T) => boolean) {
      const seen = lines.find((e) => match(e as T));
      if (seen) return Promise.resolve(seen as T);
      return new Promise<T>((resolve, reject) => {
        waiters.push({ match: match as (e: never) => boolean, resolve: resolve as (e: never) => void });
        exit.then((f) =>
          reject(new Error(`ferret ${args[0]} exited (${f.code ?? f.signal}) first:\n${f.stderr}`)),
        );
      });
    },
  };
}

/** Runs a command to completion and parses its --json result. */
export async function ferret<T>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const finished = await start([...args, "--json"], env).exit;
  if (finished.code !== 0) {
    throw new Error(
      `ferret ${args.join(" ")} exited ${finished.code ?? finished.signal}:\n${finished.stderr}`,
    );
  }
  return JSON.parse(finished.stdout.trim().split("\n").at(-1) as string) as T;
}

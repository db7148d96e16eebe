// The whole federation through the CLI, every party its own process: `ferret local up` (DynamoDB Local, s3rver,
// the API), the operator's `run create` / `clients add` / `run start` / `run export`, and three `ferret client`
// processes training a tiny GPT-2 on one president's State of the Union addresses each, for three rounds.
// One client is SIGKILLed while it trains round 1 and restarted on the same state directory.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { ferret, type Running, start } from "../../client/demo/processes.ts";
import { writeSotuSplit } from "../../client/demo/sotu.ts";
import type { Plan } from "../../core/plan.ts";

const CLIENTS = 3;
const ROUNDS = 3;
const KILLED = 2;

type Event = Record<string, unknown> & { event?: string; round?: number; checkpoint?: number };

let work: string;
let stack: Running;
let env: Record<string, string>;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ferret-e2e-"));
  stack = start(["local", "up", "--json", "--threads", "1"]);
  const ready = await stack.waitFor<{ endpoint?: string; adminToken?: string }>((e) => "endpoint" in e);
  env = { FERRET_ENDPOINT: ready.endpoint as string, FERRET_ADMIN_TOKEN: ready.adminToken as string };
});

afterAll(async () => {
  stack?.child.kill("SIGTERM");
  await stack?.exit;
  if (work) await rm(work, { recursive: true, force: true });
});

function clientArgs(token: string, runId: string, i: number, data: string, model: string) {
  return [
    "client",
    "--run",
    runId,
    "--token",
    token,
    "--data",
    data,
    "--model",
    model,
    "--state",
    join(work, `state-${i}`),
    "--threads",
    "1",
    "--poll",
    "200ms",
    "--until-checkpoint",
    String(ROUNDS),
    "--json",
  ];
}

/** The float32 data section of a safetensors file whose tensors are stored in plan order (as export writes). */
async function exportedValues(path: string): Promise<Buffer> {
  const file = await readFile(path);
  return file.subarray(8 + Number(file.readBigUInt64LE(0)));
}

describe("ferret end to end: 3 clients × 3 rounds through the CLI", () => {
  it("trains, replays to the server's exact bytes, uploads 4·Σk_b bytes once per round, survives SIGKILL", async () => {
    const model = join(work, "model");
    await writeSeededModel(model, gpt2Config({ layers: 1, width: 32, heads: 2, context: 32 }), 1);
    const datasets = await writeSotuSplit(work, CLIENTS, 6000);

    const created = await ferret<{ runId: string; config: { plan: Plan } }>(
      ["run", "create", "--model", model, "--basis", "sketch", "--k", "8192", "--local-steps", "5"]
        .concat(["--local-lr", "0.5", "--batch-size", "4", "--global-lr", "1", "--deadline", "10m"])
        .concat(["--clients-per-round", "3", "--quorum", "3", "--min-uploads", "2"]),
      env,
    );
    const { runId, config } = created;
    const totalK = config.plan.blocks.reduce((sum, b) => sum + b.k, 0);
    const tokens: string[] = [];
    for (const d of datasets) {
      tokens.push(
        (await ferret<{ token: string }>(["clients", "add", "--run", runId, "--name", d.president], env))
          .token,
      );
    }
    await ferret(["run", "start", "--run", runId], env);

    const clients = datasets.map((d, i) =>
      start(clientArgs(tokens[i] as string, runId, i, d.file, model), env),
    );
    const victim = clients[KILLED] as Running;
    await victim.waitFor<Event>((e) => e.event === "training" && e.round === 1);
    victim.child.kill("SIGKILL");
    const killed = await victim.exit;
    expect(killed.signal).toBe("SIGKILL");
    const restarted = start(
      clientArgs(tokens[KILLED] as string, runId, KILLED, datasets[KILLED]?.file as string, model),
      env,
    );

    const runs = [clients[0], clients[1], restarted] as Running[];
    const finished = await Promise.all(runs.map((c) => c.exit));
    for (const f of finished) expect(f.code, f.stderr).toBe(0);
    const events = (i: number): Event[] =>
      i === KILLED ? [...victim.events(), ...restarted.events()] : (runs[i] as Running).events();

    // Bytes up per client per round: exactly 4·Σk_b of float32 coefficients plus a small HTTP envelope.
    const table: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const uploads = events(i).filter((e) => e.event === "uploaded");
      expect(uploads.map((u) => u.round)).toEqual([0, 1, 2]);
      for (const u of uploads) {
        expect(u.bodyBytes).toBe(4 * totalK);
        const envelope = (u.requestBytes as number) - (u.bodyBytes as number);
        expect(envelope).toBeGreaterThan(0);
        expect(envelope).toBeLessThan(1024);
        table.push(
          `client ${i} round ${u.round}: ${u.requestBytes} bytes = 4·${totalK} + ${envelope} envelope`,
        );
      }
    }
    console.log(`bytes uploaded per client per round (Σk_b = ${totalK}):\n${table.join("\n")}`);

    // The killed client trained round 1 again after the restart and uploaded it once; the server counted 3 per round.
    expect(victim.events().some((e) => e.event === "uploaded" && e.round === 1)).toBe(false);
    expect(restarted.events().filter((e) => e.event === "uploaded" && e.round === 1)).toHaveLength(1);
    const status = await ferret<{ round: { round: number } }>(["run", "status", "--run", runId], env);
    expect(status.round.round).toBe(ROUNDS);
    const log = await fetch(`${env.FERRET_ENDPOINT}/runs/${runId}/log?from=0&to=${ROUNDS - 1}`, {
      headers: { authorization: `Bearer ${tokens[0]}` },
    });
    const { entries } = (await log.json()) as { entries: { round: number; uploads: number }[] };
    expect(entries.map((e) => [e.round, e.uploads])).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);

    // Every client replayed the update log (never downloading after checkpoint 0) to the server's exact bytes.
    const exported = join(work, "final.safetensors");
    await ferret(["run", "export", "--run", runId, "--checkpoint", String(ROUNDS), "--out", exported], env);
    const server = await exportedValues(exported);
    for (let i = 0; i < CLIENTS; i++) {
      const syncs = events(i).filter((e) => e.event === "synced" && (e.checkpoint as number) > 0);
      expect(syncs.filter((s) => s.method === "replay").length).toBeGreaterThan(0);
      // "verified": a restarted client already held that checkpoint and re-checked it against the manifest.
      for (const s of syncs) expect(["replay", "verified"]).toContain(s.method);
      const local = await readFile(join(work, `state-${i}`, `weights-${ROUNDS}.f32`));
      expect(local.equals(server)).toBe(true);
    }

    // Eval loss on each client's held-out rows, of the global model before and after three rounds.
    const evalAt = (checkpoint: number) =>
      [0, 1, 2].map(
        (i) => events(i).find((e) => e.event === "eval" && e.checkpoint === checkpoint)?.evalLoss as number,
      );
    const before = evalAt(0);
    const after = evalAt(ROUNDS);
    console.log(
      `eval loss per client, checkpoint 0 → ${ROUNDS}: ${before.map((b, i) => `${b.toFixed(3)} → ${after[i]?.toFixed(3)}`).join(", ")}`,
    );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(after)).toBeLessThan(mean(before) - 0.5);
    for (let i = 0; i < CLIENTS; i++) expect(after[i] as number).toBeLessThan(before[i] as number);
  }, 300_000);
});

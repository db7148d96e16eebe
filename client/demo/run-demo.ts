// `ferret demo`: the whole federation on one machine. The local stack runs in this process; the base model is a
// cached directory; each president's State of the Union addresses become one client process; R rounds run while
// this process prints eval loss, bytes and round time per round, then writes report/.
import { createWriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { DEFAULT_BASIS } from "../../functions/rounds/run-config.ts";
import { Http } from "../api/http.ts";
import { OperatorApi } from "../api/routes.ts";
import type { Output } from "../cli/output.ts";
import { createRun, type RunOptions } from "../cli/run.ts";
import { defaultBaseModelDir } from "../pretrain/main.ts";
import { hasPretrainedBase, PRETRAIN_DEFAULTS, pretrain } from "../pretrain/pretrain.ts";
import { type Running, start } from "./processes.ts";
import { type DemoSummary, type RoundRecord, writeReport } from "./report.ts";
import { writeSotuSplit } from "./sotu.ts";

export interface DemoOptions {
  clients: number;
  rounds: number;
  model?: string;
  cache: string;
  out: string;
  charsPerClient: number;
  run: RunOptions;
}

type Event = Record<string, unknown> & { event: string };

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

/** The cached demo base (`npm run pretrain`'s model), trained first when absent. */
export async function ensurePretrained(dir: string, out: Output): Promise<void> {
  if (await hasPretrainedBase(dir)) return;
  out.info(`pretraining the demo base model on Moby-Dick (once; cached in ${dir})`);
  const progress = out.progress("pretrain", PRETRAIN_DEFAULTS.steps, " steps");
  const result = await pretrain({ dir, ...PRETRAIN_DEFAULTS, onStep: (report) => progress(report.step + 1) });
  out.info(`base model: ${result.parameters} parameters, held-out loss ${result.finalEvalLoss.toFixed(3)}`);
}

export async function runDemo(options: DemoOptions, out: Output): Promise<DemoSummary> {
  const modelDir = options.model ?? defaultBaseModelDir();
  if (!options.model) await ensurePretrained(modelDir, out);
  const modelConfig = JSON.parse(await readFile(join(modelDir, "config.json"), "utf8")) as object;
  const dataDir = join(options.cache, "demo-data");
  await mkdir(dataDir, { recursive: true });
  const datasets = await writeSotuSplit(dataDir, options.clients, options.charsPerClient);
  out.info(`clients: ${datasets.map((d) => `${d.president} (${d.examples} examples)`).join(", ")}`);

  out.info("starting the local stack (DynamoDB Local, s3rver, API)…");
  const { startLocalStack } = await import("../../infra/local/stack.ts");
  const stack = await startLocalStack({ threads: 1 });
  const clients: Running[] = [];
  try {
    const operator = new OperatorApi(new Http(stack.endpoint), { adminToken: stack.adminToken });
    const created = await createRun(operator, out, modelDir, {
      ...options.run,
      clientsPerRound: options.clients,
      quorum: options.clients,
    });
    const plan = created.config.plan;
    out.info(
      `run ${created.runId}: ${plan.totalParams} parameters, basis ${options.run.basis}, K = ${plan.totalK}`,
    );
    const tokens: string[] = [];
    for (const d of datasets) tokens.push((await operator.addClient(created.runId, d.president)).token);
    await operator.start(created.runId);
    const opened = [performance.now()];
    const threads = String(Math.max(1, Math.floor(availableParallelism() / options.clients)));
    const stateDir = join(options.cache, "demo-state", created.runId);
    await mkdir(stateDir, { recursive: true });
    datasets.forEach((d, i) => {
      clients.push(
        start([
          "client",
          "--endpoint",
          stack.endpoint,
          "--run",
          created.runId,
          "--token",
          tokens[i] as string,
          "--data",
          d.file,
          "--model",
          modelDir,
          "--state",
          join(stateDir, String(i)),
          "--threads",
          threads,
          "--poll",
          "250ms",
          "--until-checkpoint",
          String(options.rounds),
          "--json",
        ]),
      );
      // Each client's messages (progress, retries, errors) go to a log beside its state.
      clients.at(-1)?.child.stderr?.pipe(createWriteStream(join(stateDir, `client-${i}.log`)));
    });
    out.info(`client logs: ${stateDir}/client-N.log`);
    const events = (kind: string) =>
      clients.map((c) => c.events().filter((e) => e.event === kind) as Event[]);
    const records: RoundRecord[] = [];
    let exited = false;
    const done = Promise.all(clients.map((c) => c.exit)).then((f) => {
      exited = true;
      return f;
    });
    while (records.length < options.rounds) {
      const status = await operator.status(created.runId);
      const current = status.round?.state === "DONE" ? status.round.round + 1 : (status.round?.round ?? 0);
      while (opened.length <= current) opened.push(performance.now());
      const r = records.length;
      const evals = events("eval").map(
        (es) => es.find((e) => e.checkpoint === r + 1)?.evalLoss as number | undefined,
      );
      const rounds = events("round").map((es) => es.find((e) => e.round === r));
      if (opened[r + 1] !== undefined && evals.every((e) => e !== undefined) && rounds.every((e) => e)) {
        const record: RoundRecord = {
          round: r,
          evalLoss: mean(evals as number[]),
          evalLossByClient: Object.fromEntries(datasets.map((d, i) => [d.president, evals[i] as number])),
          bytesUpPerClient: Math.round(mean(rounds.map((e) => e?.bytesUp as number))),
          bytesDownPerClient: Math.round(mean(rounds.map((e) => e?.bytesDown as number))),
          fullModelBytes: plan.totalParams * 4,
          seconds: ((opened[r + 1] as number) - (opened[r] as number)) / 1000,
          trainLoss: mean(rounds.map((e) => e?.trainLoss as number)),
          clients: rounds.length,
        };
        records.push(record);
        out.info(
          `round ${r}: eval loss ${record.evalLoss.toFixed(4)} | up ${record.bytesUpPerClient} B/client | down ${record.bytesDownPerClient} B/client | ${record.seconds.toFixed(1)} s`,
        );
        continue;
      }
      if (exited) {
        const failed = (await done).find((f) => f.code !== 0);
        throw new Error(`a client stopped before round ${r} finished:\n${failed?.stderr ?? "no output"}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await done;
    await operator.pause(created.runId).catch(() => undefined);
    const summary: DemoSummary = {
      machine: {
        cpus: availableParallelism(),
        platform: `${process.platform}/${process.arch}`,
        node: process.version,
      },
      model: { dir: modelDir, parameters: plan.totalParams, config: modelConfig },
      run: {
        runId: created.runId,
        basis: options.run.basis ?? DEFAULT_BASIS,
        totalK: plan.totalK,
        blocks: plan.blocks.length,
        localSteps: options.run.localSteps,
        globalLr: options.run.globalLr,
      },
      clients: datasets.map((d) => ({ name: d.president, examples: d.examples, chars: d.chars })),
      initialEvalLoss: mean(
        events("eval").map((es) => es.find((e) => e.checkpoint === 0)?.evalLoss as number),
      ),
      rounds: records,
    };
    const page = await writeReport(options.out, summary);
    out.info(`report: ${page}`);
    return summary;
  } finally {
    for (const c of clients) if (c.child.exitCode === null) c.child.kill("SIGTERM");
    await stack.close();
  }
}

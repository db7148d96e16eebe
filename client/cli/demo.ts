// `ferret demo` (also `npm run demo`): the federation on one machine, with a report. Defaults finish in a few
// minutes on 2 cores.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { FAMILIES } from "../../core/reference.ts";
import { MAX_TOTAL_K } from "../../functions/rounds/run-config.ts";
import { defaultSeqLen } from "./client.ts";
import { jsonOption } from "./connection.ts";
import { positiveInt, positiveIntUpTo, positiveNumber } from "./options.ts";
import { Output, pathInputError, UsageError, writableDirectory } from "./output.ts";

interface DemoFlags {
  clients: number;
  rounds: number;
  model?: string;
  cache: string;
  out: string;
  chars: number;
  basis: "gaussian" | "rademacher" | "sketch";
  k: number;
  localSteps: number;
  localLr: number;
  globalLr: number;
  batchSize: number;
  json?: boolean;
}

/**
 * What the demo can check before it starts the local stack, so that a mistake stops it at once (exit 2 or 3), not
 * after the rounds: the directories it writes, the base model, and that each client's text makes enough rows.
 * Returns the base model's directory (the cached pretrained model unless --model names one).
 */
async function checkInputs(flags: DemoFlags, out: Output): Promise<string> {
  await writableDirectory("--out", flags.out);
  await writableDirectory("--cache", flags.cache);
  const [{ ensurePretrained }, { defaultBaseModelDir }, { loadModelDir, openModelWeights }, trainer, sotu] =
    await Promise.all([
      import("../demo/run-demo.ts"),
      import("../pretrain/main.ts"),
      import("../participant/model-dir.ts"),
      import("../participant/trainer.ts"),
      import("../demo/sotu.ts"),
    ]);
  const scratch = await mkdtemp(join(tmpdir(), "ferret-demo-check-"));
  try {
    const datasets = await sotu
      .writeSotuSplit(scratch, flags.clients, flags.chars)
      .catch((error: unknown) => {
        if (!(error instanceof RangeError)) throw error;
        throw new UsageError(`--clients ${flags.clients}: ${error.message}; expected fewer clients`);
      });
    const dir = flags.model ?? defaultBaseModelDir();
    if (flags.model === undefined) await ensurePretrained(dir, out);
    const unusableModel = (error: unknown) => {
      throw pathInputError("--model", dir, "a model directory", error);
    };
    const model = await loadModelDir(dir).catch(unusableModel);
    await (await openModelWeights(model).catch(unusableModel)).close();
    for (const dataset of datasets) {
      // The clients' own rule, with the row length they will use (no --seq-len).
      await trainer
        .loadLocalData(dataset.file, model.tokenizer, defaultSeqLen(model.config.maxPositions))
        .catch((error: unknown) => {
          if (!(error instanceof RangeError)) throw error;
          throw new UsageError(
            `--chars ${flags.chars} gives ${dataset.president}'s client too little text: ` +
              `${error.message.replace(dataset.file, "its text")}; expected a larger --chars`,
          );
        });
    }
    return dir;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "run a whole federation locally: State of the Union split by president, N clients, R rounds, report/",
    )
    .option("--clients <n>", "clients, one president each", positiveInt, 4)
    .option("--rounds <n>", "federated rounds", positiveInt, 8)
    .option(
      "--model <dir>",
      "base model directory (default: `npm run pretrain`'s model, cached in ~/.cache/ferret/models or " +
        "$FERRET_CACHE_DIR/models, trained first if absent)",
    )
    .option("--cache <dir>", "where the clients' data splits, state and logs live", ".ferret")
    .option("--out <dir>", "report directory", "report")
    .option("--chars <n>", "characters of speeches per client", positiveInt, 20_000)
    .addOption(
      new Option("--basis <family>", "projection family (sketch: O(d) whatever K)")
        .choices(FAMILIES)
        .default("sketch"),
    )
    .option(
      "--k <n>",
      `coefficients per upload (at most ${MAX_TOTAL_K})`,
      positiveIntUpTo(MAX_TOTAL_K),
      MAX_TOTAL_K,
    )
    .option("--local-steps <n>", "local SGD steps per round", positiveInt, 10)
    .option("--local-lr <x>", "local SGD learning rate", positiveNumber, 0.05)
    .option("--global-lr <x>", "server learning rate", positiveNumber, 1)
    .option("--batch-size <n>", "local batch size", positiveInt, 8)
    .addOption(jsonOption())
    .action(async (flags: DemoFlags) => {
      const out = new Output(flags.json === true);
      const model = await checkInputs(flags, out);
      const { runDemo } = await import("../demo/run-demo.ts");
      const summary = await runDemo(
        {
          clients: flags.clients,
          rounds: flags.rounds,
          model,
          cache: flags.cache,
          out: flags.out,
          charsPerClient: flags.chars,
          run: {
            strategy: "ferret",
            basis: flags.basis,
            k: flags.k,
            clientsPerRound: flags.clients,
            quorum: flags.clients,
            minUploads: 1,
            deadline: 600,
            globalLr: flags.globalLr,
            localSteps: flags.localSteps,
            localLr: flags.localLr,
            batchSize: flags.batchSize,
            weighting: "examples",
          },
        },
        out,
      );
      const last = summary.rounds.at(-1);
      out.result(
        summary,
        `eval loss ${summary.initialEvalLoss.toFixed(4)} → ${last?.evalLoss.toFixed(4)} over ${summary.rounds.length} rounds; report in ${flags.out}/index.html`,
      );
    });
}

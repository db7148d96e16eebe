// `ferret demo` (also `npm run demo`): the federation on one machine, with a report. Defaults finish in a few
// minutes on 2 cores.
import { type Command, Option } from "commander";
import { FAMILIES } from "../../core/reference.ts";
import { jsonOption } from "./connection.ts";
import { positiveInt, positiveNumber } from "./options.ts";
import { Output } from "./output.ts";

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
      "base model directory (default: the cached `npm run pretrain` model, trained first if absent)",
    )
    .option("--cache <dir>", "where the base model, data splits and client state live", ".ferret")
    .option("--out <dir>", "report directory", "report")
    .option("--chars <n>", "characters of speeches per client", positiveInt, 20_000)
    .addOption(
      new Option("--basis <family>", "projection family (sketch: O(d) whatever K)")
        .choices(FAMILIES)
        .default("sketch"),
    )
    .option("--k <n>", "coefficients per upload (at most 65536)", positiveInt, 65_536)
    .option("--local-steps <n>", "local SGD steps per round", positiveInt, 10)
    .option("--local-lr <x>", "local SGD learning rate", positiveNumber, 0.05)
    .option("--global-lr <x>", "server learning rate", positiveNumber, 1)
    .option("--batch-size <n>", "local batch size", positiveInt, 8)
    .addOption(jsonOption())
    .action(async (flags: DemoFlags) => {
      const out = new Output(flags.json === true);
      const { runDemo } = await import("../demo/run-demo.ts");
      const summary = await runDemo(
        {
          clients: flags.clients,
          rounds: flags.rounds,
          ...(flags.model ? { model: flags.model } : {}),
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

// `ferret run create|upload|status|start|pause|export`: the operator's side of a run.
import { dirname, resolve } from "node:path";
import { type Command, Option } from "commander";
import { assertPlanMatches } from "../../core/plan.ts";
import { FAMILIES } from "../../core/reference.ts";
import { DEFAULT_BASIS, DEFAULT_ZEROTH_ORDER } from "../../functions/rounds/run-config.ts";
import {
  committedCheckpoint,
  type OperatorApi,
  type RunConfig,
  type RunConfigInput,
  type RunStatus,
} from "../api/routes.ts";
import { openWeights, uploadCheckpoint0 } from "./checkpoint-upload.ts";
import { type OperatorFlags, operator, required, runOption, withOperatorOptions } from "./connection.ts";
import { nonNegativeInt, positiveInt, positiveNumber, seconds } from "./options.ts";
import { InputError, type Output, writableDirectory } from "./output.ts";

export const STRATEGIES = ["ferret", "fedavg", "fedkseed"] as const;
const DEFAULT_K = 4096;

export interface RunOptions {
  strategy: RunConfig["strategy"];
  /** Absent: the server's default for the strategy. */
  basis?: RunConfig["basis"];
  /** ferret only: K (DEFAULT_K when absent). */
  k?: number;
  /** fedkseed only: pool size K and perturbation ε (the server's defaults when absent). */
  seedPool?: number;
  perturbation?: number;
  blockSize?: number;
  clientsPerRound: number;
  quorum: number;
  minUploads: number;
  deadline: number;
  globalLr: number;
  localSteps: number;
  /** Default: DEFAULT_LOCAL_LR of the strategy. */
  localLr?: number;
  batchSize: number;
  weighting: RunConfig["weighting"];
  maxUploadNorm?: number;
  maxExamples?: number;
}

/** Creates a run from a model directory and uploads its weights as checkpoint 0. */
export async function createRun(api: OperatorApi, out: Output, modelDir: string, options: RunOptions) {
  const weights = await openWeights(modelDir);
  try {
    if (weights.ignored.length > 0) {
      out.info(`ignoring tensors the model does not use: ${weights.ignored.join(", ")}`);
    }
    const created = await api.createRun({
      ...strategyConfig(options),
      tensors: weights.tensors.map(({ name, shape }) => ({ name, shape })),
      ...(options.blockSize ? { targetBlockSize: options.blockSize } : {}),
      learningRate: options.globalLr,
      clientsPerRound: options.clientsPerRound,
      quorum: options.quorum,
      minUploads: options.minUploads,
      deadlineSeconds: options.deadline,
      weighting: options.weighting,
      ...(options.maxUploadNorm === undefined ? {} : { maxUploadNorm: options.maxUploadNorm }),
      ...(options.maxExamples === undefined ? {} : { maxExamples: options.maxExamples }),
      localSteps: localStepsOf(options),
    });
    const resume = `ferret run upload --run ${created.runId} --model ${modelDir}`;
    // Said before the upload, which can take hours: a Ctrl-C or a kill ends the process without a catch, and no
    // command lists runs, so the id would be lost with the run left waiting for its checkpoint 0.
    out.info(
      `created run ${created.runId}; uploading checkpoint 0 (should this stop, finish it with ${resume})`,
    );
    try {
      const checkpoint = await uploadCheckpoint0(api, out, created.runId, weights.tensors);
      return { runId: created.runId, config: created.config, checkpoint };
    } catch (error) {
      out.info(`run ${created.runId} exists without checkpoint 0; upload it again with ${resume}`);
      throw error;
    }
  } finally {
    await weights.close();
  }
}

/**
 * Local learning rates that train the demo base model (bench:convergence). A fedkseed step moves the weights along
 * one random direction by its two-point gradient estimate, which is far noisier than a gradient: at ferret's 0.05
 * the demo model's eval loss reached 84,495 after two rounds.
 */
export const DEFAULT_LOCAL_LR: Record<RunOptions["strategy"], number> = {
  ferret: 0.05,
  fedavg: 0.05,
  fedkseed: 3e-3,
};

export const localStepsOf = (options: RunOptions) => ({
  steps: options.localSteps,
  learningRate: options.localLr ?? DEFAULT_LOCAL_LR[options.strategy],
  batchSize: options.batchSize,
});

/** Uploads checkpoint 0 of a run whose `run create` stopped before the upload completed. */
export async function uploadInitialCheckpoint(
  api: OperatorApi,
  out: Output,
  runId: string,
  modelDir: string,
) {
  const status = await api.status(runId);
  if (status.initialCheckpointReady) throw new InputError(`run ${runId} already has checkpoint 0`);
  const weights = await openWeights(modelDir);
  try {
    try {
      assertPlanMatches(status.config.plan, weights.tensors);
    } catch (error) {
      throw new InputError(
        `${modelDir} is not the model run ${runId} was created from: ${(error as Error).message}`,
      );
    }
    return { runId, checkpoint: await uploadCheckpoint0(api, out, runId, weights.tensors) };
  } finally {
    await weights.close();
  }
}

/**
 * The strategy's part of the run config. Only ferret uses K coefficients (fedavg and fedkseed runs get a plan
 * without one: its blocks still define shards and hashes); only fedkseed takes a seed pool and a perturbation.
 */
export function strategyConfig(
  options: RunOptions,
): Pick<RunConfigInput, "strategy" | "basis" | "totalK" | "zerothOrder"> {
  const { strategy, basis, k, seedPool, perturbation } = options;
  if (strategy !== "fedkseed" && (seedPool !== undefined || perturbation !== undefined)) {
    throw new InputError(`--seed-pool and --perturbation apply to --strategy fedkseed only, not ${strategy}`);
  }
  if (strategy !== "ferret" && k !== undefined) {
    throw new InputError(
      `--k applies to --strategy ferret only; ${strategy} uploads no projected coefficients`,
    );
  }
  const family = basis === undefined ? {} : { basis };
  if (strategy === "ferret") return { strategy, ...family, totalK: k ?? DEFAULT_K };
  if (strategy === "fedavg") return { strategy, ...family };
  if (seedPool === undefined && perturbation === undefined) return { strategy, ...family };
  const zerothOrder = {
    seedPool: seedPool ?? DEFAULT_ZEROTH_ORDER.seedPool,
    perturbation: perturbation ?? DEFAULT_ZEROTH_ORDER.perturbation,
  };
  return { strategy, ...family, zerothOrder };
}

function describeStrategy(config: RunConfig): string {
  const strategy = config.strategy ?? "ferret";
  if (strategy === "fedavg") return "strategy fedavg (full updates)";
  if (strategy === "fedkseed") {
    const pool = config.zerothOrder;
    return `strategy fedkseed, seed pool K ${pool?.seedPool}, perturbation ${pool?.perturbation}`;
  }
  return `strategy ferret, basis ${config.basis}, K ${config.plan.totalK}`;
}

/** The run's newest committed checkpoint; none before checkpoint 0 is imported. */
export function latestCheckpoint(status: RunStatus): number | undefined {
  if (!status.initialCheckpointReady) return undefined;
  return status.round ? committedCheckpoint(status.round) : 0;
}

/** Clients named in a human status, at most; --json lists them all. */
const LISTED_CLIENTS = 20;

function describeStatus(status: RunStatus): string {
  const round = status.round;
  const active = status.clients.filter((c) => !c.revoked);
  const lines = [
    `run ${status.runId}: ${status.status}, ${status.config.plan.totalParams} parameters, ${describeStrategy(status.config)}, ${status.config.plan.blocks.length} blocks`,
    `clients: ${active.length} active, ${status.clients.length - active.length} revoked`,
    ...status.clients
      .slice(0, LISTED_CLIENTS)
      .map((c) => `  ${c.clientId}  ${c.name}${c.revoked ? "  (revoked)" : ""}`),
    ...(status.clients.length > LISTED_CLIENTS
      ? [`  … and ${status.clients.length - LISTED_CLIENTS} more (--json lists every client)`]
      : []),
  ];
  const latest = latestCheckpoint(status);
  if (latest !== undefined) lines.push(`latest checkpoint: ${latest} (ferret run export writes it)`);
  if (!status.initialCheckpointReady) {
    const failure = status.importFailure;
    lines.push(
      failure
        ? `checkpoint 0: its last import failed (${failure.error}: ${failure.message}); ferret run upload sends it again`
        : "checkpoint 0: not imported yet",
    );
  }
  if (round) {
    lines.push(
      `round ${round.round}: ${round.state}, ${round.uploadCount}/${round.quorum} uploads (min ${round.minUploads}), base checkpoint ${round.baseCheckpoint}, deadline ${round.deadline}`,
    );
    if (round.failureReason) lines.push(`  failed: ${round.failureReason}`);
  } else lines.push("no round yet (ferret run start)");
  return lines.join("\n");
}

export function registerRunCommands(program: Command): void {
  const run = program.command("run").description("create, watch and export federated runs (operator)");

  withOperatorOptions(
    run
      .command("create")
      .description("create a run from a model directory and upload its weights as checkpoint 0")
      .requiredOption(
        "--model <dir>",
        "model directory: config.json, model.safetensors (or shards listed by model.safetensors.index.json), tokenizer",
      )
      .addOption(
        new Option(
          "--strategy <name>",
          "ferret: K projected coefficients per upload; fedavg: full updates (accuracy reference, " +
            "4 bytes per parameter up); fedkseed: zeroth-order steps over a seed pool, 8 bytes per step up",
        )
          .choices(STRATEGIES)
          .default("ferret"),
      )
      .addOption(
        new Option(
          "--basis <family>",
          `ferret's projection family (default ${DEFAULT_BASIS}, from bench:convergence; fedkseed: gaussian only)`,
        ).choices(FAMILIES),
      )
      .option("--k <n>", `ferret: total coefficients K per upload (Σ k_b; default ${DEFAULT_K})`, positiveInt)
      .option(
        "--seed-pool <n>",
        `fedkseed: directions K in the seed pool (default ${DEFAULT_ZEROTH_ORDER.seedPool})`,
        positiveInt,
      )
      .option(
        "--perturbation <x>",
        `fedkseed: two-point perturbation ε (default ${DEFAULT_ZEROTH_ORDER.perturbation})`,
        positiveNumber,
      )
      .option("--block-size <n>", "pack tensors smaller than this into one block", positiveInt)
      .option("--clients-per-round <n>", "clients selected each round", positiveInt, 3)
      .option("--quorum <n>", "uploads that close a round early", positiveInt, 3)
      .option("--min-uploads <n>", "uploads a round needs at its deadline", positiveInt, 1)
      .addOption(
        new Option("--deadline <duration>", "round deadline (90s, 5m, 2h)")
          .argParser(seconds)
          .default(600, "10m"),
      )
      .option("--global-lr <x>", "server learning rate η_g", positiveNumber, 1)
      .option("--local-steps <n>", "local steps T per round (fedkseed: zeroth-order steps)", positiveInt, 10)
      .option(
        "--local-lr <x>",
        `local learning rate (default ${DEFAULT_LOCAL_LR.ferret}; fedkseed: η of each zeroth-order step, ` +
          `default ${DEFAULT_LOCAL_LR.fedkseed})`,
        positiveNumber,
      )
      .option("--batch-size <n>", "local batch size", positiveInt, 8)
      .addOption(
        new Option("--weighting <w>", "aggregate weights").choices(["examples", "equal"]).default("examples"),
      )
      .option(
        "--max-upload-norm <x>",
        "scale an upload down to this L2 norm (ferret, fedkseed: of its coefficients); fedavg refuses a " +
          "larger update, and its client skips the round",
        positiveNumber,
      )
      .option("--max-examples <n>", "weigh an upload by at most this many examples", positiveInt),
  ).action(async (flags: OperatorFlags & RunOptions & { model: string }) => {
    const { api, out } = await operator(flags);
    const created = await createRun(api, out, flags.model, flags);
    const plan = created.config.plan;
    out.result(
      created,
      `created run ${created.runId}: ${plan.totalParams} parameters in ${plan.blocks.length} blocks, ${describeStrategy(created.config)}\n` +
        `next: ferret clients add --run ${created.runId} --name NAME, then ferret run start --run ${created.runId}`,
    );
  });

  withOperatorOptions(
    run
      .command("upload")
      .description(
        "upload checkpoint 0 again, for a run whose `run create` stopped before its upload completed",
      )
      .addOption(runOption())
      .requiredOption("--model <dir>", "the model directory the run was created from"),
  ).action(async (flags: OperatorFlags & { run?: string; model: string }) => {
    const { api, out } = await operator(flags);
    const uploaded = await uploadInitialCheckpoint(
      api,
      out,
      required(flags.run, "--run", "FERRET_RUN"),
      flags.model,
    );
    out.result(
      uploaded,
      `run ${uploaded.runId} has checkpoint 0: ${uploaded.checkpoint.totalParams} parameters` +
        `${uploaded.checkpoint.shards === undefined ? "" : ` in ${uploaded.checkpoint.shards} shards`}\n` +
        `next: ferret run start --run ${uploaded.runId}`,
    );
  });

  withOperatorOptions(
    run.command("status").description("show a run, its clients and its current round").addOption(runOption()),
  ).action(async (flags: OperatorFlags & { run?: string }) => {
    const { api, out } = await operator(flags);
    const status = await api.status(required(flags.run, "--run", "FERRET_RUN"));
    out.result(status, describeStatus(status));
  });

  withOperatorOptions(
    run.command("start").description("start (or resume) a run: opens its next round").addOption(runOption()),
  ).action(async (flags: OperatorFlags & { run?: string }) => {
    const { api, out } = await operator(flags);
    const started = await api.start(required(flags.run, "--run", "FERRET_RUN"));
    out.result(started, `run ${started.runId} is ${started.status}; round ${started.currentRound} is open`);
  });

  withOperatorOptions(
    run.command("pause").description("pause a run after its open round").addOption(runOption()),
  ).action(async (flags: OperatorFlags & { run?: string }) => {
    const { api, out } = await operator(flags);
    const paused = await api.pause(required(flags.run, "--run", "FERRET_RUN"));
    out.result(paused, `run ${paused.runId} is PAUSED`);
  });

  withOperatorOptions(
    run
      .command("export")
      .description("write a committed checkpoint (the latest by default) as one safetensors file")
      .addOption(runOption())
      .option(
        "--checkpoint <n>",
        "checkpoint number (default: the latest): 0 is the initial model, and round r commits r + 1, so a " +
          "round that expired or failed leaves its number unused",
        nonNegativeInt,
      )
      .requiredOption("--out <file>", "output .safetensors path"),
  ).action(async (flags: OperatorFlags & { run?: string; checkpoint?: number; out: string }) => {
    const { api, out } = await operator(flags);
    await writableDirectory("--out", dirname(resolve(flags.out)));
    const runId = required(flags.run, "--run", "FERRET_RUN");
    const checkpoint = flags.checkpoint ?? latestCheckpoint(await api.status(runId));
    if (checkpoint === undefined)
      throw new InputError(`run ${runId} has no checkpoint 0 yet (ferret run upload)`);
    const exported = await api.exportCheckpoint(runId, checkpoint, {
      onWait: (waited) =>
        out.info(`the server is writing checkpoint ${checkpoint}'s export (${Math.round(waited / 1000)} s)`),
    });
    let progress: ((done: number) => void) | undefined;
    const bytes = await api.http.downloadToFile(exported.url, flags.out, (done, total) => {
      progress ??= out.progress(`downloading checkpoint ${checkpoint}`, total, "B");
      progress(done);
    });
    out.result(
      { checkpoint, out: flags.out, bytes },
      `wrote checkpoint ${checkpoint} to ${flags.out} (${bytes} bytes)`,
    );
  });
}

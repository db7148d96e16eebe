// `ferret client`: a data owner's process. Loops over rounds until stopped (or until a given checkpoint).

import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { Http } from "../api/http.ts";
import { ClientApi, type Strategy } from "../api/routes.ts";
import { DEVICES, type Device } from "../engine/devices.ts";
import type { ClientEvent } from "../participant/loop.ts";
import {
  announcedBackoff,
  endpointOption,
  giveUpOption,
  jsonOption,
  required,
  runOption,
} from "./connection.ts";
import { milliseconds, nonNegativeInt, positiveInt } from "./options.ts";
import { EXIT, Output, pathInputError, UsageError } from "./output.ts";

interface ClientFlags {
  endpoint?: string;
  run?: string;
  token?: string;
  data: string;
  model: string;
  device: Device;
  threads?: number;
  sync: "replay" | "download";
  state?: string;
  seqLen?: number;
  poll: number;
  giveUpAfter: number;
  untilCheckpoint?: number;
  json?: boolean;
}

/** What the numbers a strategy uploads are called. */
const UPLOADED: Record<Strategy, string> = {
  ferret: "coefficients",
  fedkseed: "(seed, gradient) pairs",
  fedavg: "update values",
};

function describe(event: ClientEvent): string {
  switch (event.event) {
    case "waiting":
      return `waiting: ${event.reason}`;
    case "syncing":
      return `syncing: ${event.message}`;
    case "synced": {
      const replayed = event.replayed ? `${event.replayed} round(s) replayed` : undefined;
      const detail = [replayed, event.reason].filter((part) => part !== undefined).join("; ");
      return `checkpoint ${event.checkpoint}: ${event.method}${detail ? ` (${detail})` : ""}, ${event.bytesDown} bytes down`;
    }
    case "eval":
      return `checkpoint ${event.checkpoint}: eval loss ${event.evalLoss.toFixed(4)}`;
    case "training":
      return `round ${event.round}: training ${event.steps} local steps`;
    case "step":
      return `round ${event.round}: step ${event.step + 1} loss ${event.loss.toFixed(4)}`;
    case "uploading":
      return `round ${event.round}: uploading the update, ${Math.round((100 * event.bytes) / event.total)}% of ${event.total} bytes`;
    case "uploaded":
      return `round ${event.round}: uploaded ${event.coefficients} ${UPLOADED[event.strategy]} (${event.requestBytes} bytes)${event.resent ? ", resent after restart" : ""}${event.duplicate ? ", the server already had it" : ""}`;
    case "skipped":
      return `round ${event.round}: skipped (${event.reason})`;
    case "round":
      return `round ${event.round}: train loss ${event.trainLoss.toFixed(4)}, ${event.bytesUp} bytes up, ${event.bytesDown} bytes down, ${event.seconds.toFixed(1)} s`;
    case "done":
      return `done: holding checkpoint ${event.checkpoint}`;
  }
}

/** Tokens per training row when --seq-len is not given: the model's context, at most 128. */
export const defaultSeqLen = (positions: number) => Math.min(128, positions);

export function registerClientCommand(program: Command): void {
  program
    .command("client")
    .description(
      "take part in a run: wait for a round, sync, train locally, upload what the run's strategy sends " +
        "(ferret: K coefficients; fedkseed: one (seed, gradient) pair per step; fedavg: the full update); repeat",
    )
    .addOption(endpointOption())
    .addOption(runOption())
    .addOption(
      new Option("--token <token>", "this client's bearer token (from `ferret clients add`)").env(
        "FERRET_TOKEN",
      ),
    )
    .requiredOption("--data <file>", 'training data, JSONL of {"text"} or {"prompt","response"}')
    .requiredOption(
      "--model <dir>",
      "model directory with config.json and tokenizer (weights come from the server)",
    )
    .addOption(new Option("--device <device>", "where to train").choices(DEVICES).default("cpu"))
    .option(
      "--threads <n>",
      "ONNX Runtime threads (default: one per physical core this process may use)",
      positiveInt,
    )
    .addOption(
      new Option("--sync <mode>", "how to reach each round's checkpoint")
        .choices(["replay", "download"])
        .default("replay"),
    )
    .option("--state <dir>", "state directory (default: .ferret/client-<run>-<token hash>)")
    .option(
      "--seq-len <n>",
      "tokens per training row (default: the model's context, at most 128)",
      positiveInt,
    )
    .addOption(
      new Option(
        "--poll <duration>",
        "how often to ask for an assignment while waiting, give or take a quarter (250ms, 5s, …)",
      )
        .argParser(milliseconds)
        .default(5000, "5s"),
    )
    .addOption(giveUpOption(600, "10m"))
    .option(
      "--until-checkpoint <n>",
      "exit once a checkpoint N or later is committed and synced (rounds that expired or failed commit none)",
      nonNegativeInt,
    )
    .addOption(jsonOption())
    .action(async (flags: ClientFlags) => {
      const out = new Output(flags.json === true);
      const runId = required(flags.run, "--run", "FERRET_RUN");
      const token = required(flags.token, "--token", "FERRET_TOKEN");
      const stop = new AbortController();
      // Ctrl-C also ends a wait for the server: no retry starts after it.
      const backoff = { ...announcedBackoff(out, flags.giveUpAfter), signal: stop.signal };
      const api = new ClientApi(
        new Http(required(flags.endpoint, "--endpoint", "FERRET_ENDPOINT"), backoff),
        runId,
        token,
      );
      // Loaded here, not at startup: ONNX Runtime and the model code are only needed by this command.
      const [
        { runClient },
        { loadModelDir },
        { StateDir },
        { LocalTrainer, loadLocalData },
        { ensureDeviceAvailable },
      ] = await Promise.all([
        import("../participant/loop.ts"),
        import("../participant/model-dir.ts"),
        import("../participant/state.ts"),
        import("../participant/trainer.ts"),
        import("../engine/session.ts"),
      ]);
      const model = await loadModelDir(flags.model).catch((error: unknown) => {
        throw pathInputError("--model", flags.model, "a model directory", error);
      });
      const positions = model.config.maxPositions;
      if (flags.seqLen !== undefined && flags.seqLen > positions) {
        throw new UsageError(
          `--seq-len ${flags.seqLen} is longer than the model's context: ${flags.model} has ${positions} ` +
            `positions, so expected --seq-len ${positions} or less`,
        );
      }
      const seqLen = flags.seqLen ?? defaultSeqLen(positions);
      const data = await loadLocalData(flags.data, model.tokenizer, seqLen).catch((error: unknown) => {
        throw pathInputError("--data", flags.data, "a JSONL file", error);
      });
      await ensureDeviceAvailable(flags.device);
      // The token is per client, so its hash names this client's state and seeds its fedkseed step draws.
      const tokenHash = createHash("sha256").update(token).digest("hex");
      const state = await StateDir.open(
        flags.state ?? join(".ferret", `client-${runId}-${tokenHash.slice(0, 12)}`),
        runId,
      );
      const interrupt = () => {
        out.info(
          "stopping after the current step, or now if waiting (Ctrl-C again quits at once; state is on disk: " +
            "run the same command to resume)",
        );
        stop.abort();
      };
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      let reached: number;
      try {
        reached = await runClient({
          api,
          state,
          clientKey: tokenHash,
          stateNamedForClient: flags.state === undefined,
          sync: flags.sync,
          pollMs: flags.poll,
          ...(flags.untilCheckpoint === undefined ? {} : { untilCheckpoint: flags.untilCheckpoint }),
          signal: stop.signal,
          trainer: (assignment) =>
            LocalTrainer.create(model.config, assignment.plan, data, {
              device: flags.device,
              batchSize: assignment.localSteps.batchSize,
              ...(flags.threads ? { threads: flags.threads } : {}),
            }),
          emit: (event) => {
            if (event.event === "step" && !flags.json && event.step % 5 !== 4) return;
            out.event(event, describe(event));
          },
        });
      } finally {
        // Nothing is saved before the server has answered this client: one it refused leaves no directory.
        await state.removeIfUnused();
      }
      if (reached < 0) process.exitCode = EXIT.interrupted;
    });
}

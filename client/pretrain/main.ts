// npm run pretrain [-- --steps N --seed S --out DIR ...]: trains the demo's base model with a progress bar.
import "../engine/tune-heap.ts";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEVICES, isDevice } from "../engine/devices.ts";
import { PRETRAIN_DEFAULTS, pretrain } from "./pretrain.ts";

/** Where models and other reusable artifacts are cached: $FERRET_CACHE_DIR, else ~/.cache/ferret. */
export function cacheDir(): string {
  return process.env.FERRET_CACHE_DIR ?? join(homedir(), ".cache", "ferret");
}

export const defaultBaseModelDir = () => join(cacheDir(), "models", "moby-dick-gpt2");

const USAGE = `usage: npm run pretrain -- [--out DIR] [--seed N] [--steps N] [--layers N] [--width N] [--heads N]
                            [--seq-len N] [--batch-size N] [--threads N] [--device cpu|cuda|webgpu]
Trains a small GPT-2 on Moby-Dick and writes config.json, model.safetensors and tokenizer.json to DIR
(default ${defaultBaseModelDir()}).`;

/** A command line that cannot work: exit 2 with the usage, as the ferret command does. */
class UsageError extends Error {}

function positiveInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--${name} is "${value}"; expected a positive integer`);
  return n;
}

const VALUE_OPTIONS = [
  "out",
  "seed",
  "steps",
  "layers",
  "width",
  "heads",
  "seq-len",
  "batch-size",
  "threads",
  "device",
] as const;

function parsedArguments() {
  const valued = Object.fromEntries(VALUE_OPTIONS.map((name) => [name, { type: "string" }])) as Record<
    (typeof VALUE_OPTIONS)[number],
    { type: "string" }
  >;
  try {
    return parseArgs({ options: { help: { type: "boolean", short: "h" }, ...valued }, strict: true }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** One line per step on a terminal (redrawn in place); elsewhere (a log, CI) a line at each tenth and at the end. */
function progressLine(steps: number): (done: number, line: string) => void {
  if (process.stderr.isTTY) return (_, line) => process.stderr.write(`\r${line} `);
  const every = Math.max(1, Math.round(steps / 10));
  return (done, line) => {
    if (done % every === 0 || done === steps) process.stderr.write(`${line}\n`);
  };
}

async function main(): Promise<void> {
  const values = parsedArguments();
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const d = PRETRAIN_DEFAULTS;
  const steps = positiveInteger("steps", values.steps, d.steps);
  const started = Date.now();
  const threads = values.threads === undefined ? undefined : positiveInteger("threads", values.threads, 1);
  const device = values.device ?? "cpu";
  if (!isDevice(device))
    throw new UsageError(`--device is "${device}"; expected one of ${DEVICES.join(", ")}`);
  const dir = values.out ?? defaultBaseModelDir();
  // The model is written to DIR.partial and renamed when complete, so an interrupted run leaves DIR as it was.
  process.once("SIGINT", () => {
    process.stderr.write(`\npretrain interrupted; ${dir} is unchanged\n`);
    process.exit(130);
  });
  const progress = progressLine(steps);
  const result = await pretrain({
    dir,
    seed: positiveInteger("seed", values.seed, d.seed),
    steps,
    layers: positiveInteger("layers", values.layers, d.layers),
    width: positiveInteger("width", values.width, d.width),
    heads: positiveInteger("heads", values.heads, d.heads),
    seqLen: positiveInteger("seq-len", values["seq-len"], d.seqLen),
    batchSize: positiveInteger("batch-size", values["batch-size"], d.batchSize),
    ...(threads === undefined ? {} : { threads }),
    device,
    onStep: (report, evalLoss) => {
      const done = Math.min(report.step + 1, steps);
      const bar = "#".repeat(Math.round((30 * done) / steps)).padEnd(30, ".");
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      const status =
        evalLoss === undefined ? `loss ${report.loss.toFixed(3)}` : `held-out loss ${evalLoss.toFixed(3)}`;
      progress(done, `pretrain [${bar}] step ${done}/${steps} ${status} ${seconds}s`);
    },
  });
  if (process.stderr.isTTY) process.stderr.write("\n");
  console.log(
    `wrote ${result.dir}: ${result.parameters} parameters, held-out loss ${result.initialEvalLoss.toFixed(3)} → ${result.finalEvalLoss.toFixed(3)}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`pretrain: ${error.message}\n${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`\npretrain failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}

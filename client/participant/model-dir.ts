// A model directory as Hugging Face lays it out: config.json, the weights (model.safetensors, or the shards that
// model.safetensors.index.json lists, as larger models ship), and a tokenizer (tokenizer.json, or vocab.json +
// merges.txt, or none for bytes). Clients need the config and tokenizer; the weights come from the server. The
// operator also reads the weights to create a run.
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type NamedTensor, SafetensorsReader } from "../../core/formats/safetensors.ts";
import type { LazyTensor } from "../../core/formats/safetensors-image.ts";
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
      `${path} is missing; a model directory holds config.json, its weights (model.safetensors, or shards and model.safetensors.index.json) and a tokenizer`,
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
 * The weights in the model's own tensor order (the order of the run's plan), checked against its config, each
 * read from its file when asked for: a model of any size costs the open files, not its weights. Tensors the model
 * does not use (e.g. saved attention-mask buffers) are returned by name in `ignored`. Call `close` when done.
 */
export async function openModelWeights(
  model: ModelDir,
): Promise<{ tensors: LazyTensor[]; ignored: string[]; close(): Promise<void> }> {
  const { path, files } = await weightFiles(model.dir);
  const readers: SafetensorsReader[] = [];
  const close = async () => {
    await Promise.all(readers.map((reader) => reader.close()));
  };
  try {
    const byName = new Map<string, { reader: SafetensorsReader; shape: number[] }>();
    const unindexed: string[] = [];
    for (const [file, names] of files) {
      const shard = join(model.dir, file);
      const reader = await SafetensorsReader.open(shard).catch((error: NodeJS.ErrnoException) => {
        if (names && error.code === "ENOENT") throw new InputError(`${path} names ${file}, which is missing`);
        throw error;
      });
      readers.push(reader);
      for (const { name, shape } of reader.tensors) {
        if (names && !names.has(name)) unindexed.push(`${name} (in ${file}, not in the index)`);
        else byName.set(name, { reader, shape });
      }
      for (const name of names ?? []) {
        if (!byName.has(name))
          throw new InputError(`${path} places tensor ${name} in ${file}, which lacks it`);
      }
    }
    const expected = modelTensors(model.config);
    const tensors = expected.map((spec): LazyTensor => {
      const found = byName.get(spec.name);
      if (!found)
        throw new InputError(
          `${path} lacks tensor ${spec.name} (shape [${spec.shape}]) that config.json implies`,
        );
      if (found.shape.join() !== spec.shape.join()) {
        throw new InputError(
          `${path}: tensor ${spec.name} has shape [${found.shape}]; config.json implies [${spec.shape}]`,
        );
      }
      return {
        name: spec.name,
        shape: [...spec.shape],
        read: (start, count) => found.reader.readRange(spec.name, start, count),
      };
    });
    const used = new Set(expected.map((s) => s.name));
    const ignored = [...[...byName.keys()].filter((name) => !used.has(name)), ...unindexed];
    return { tensors, ignored, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The weights as openModelWeights finds them, read into memory (f32). */
export async function loadModelWeights(
  model: ModelDir,
): Promise<{ tensors: NamedTensor[]; ignored: string[] }> {
  const weights = await openModelWeights(model);
  try {
    const tensors: NamedTensor[] = [];
    for (const t of weights.tensors) {
      tensors.push({
        name: t.name,
        shape: t.shape,
        data: await t.read(
          0,
          t.shape.reduce((a, b) => a * b, 1),
        ),
      });
    }
    return { tensors, ignored: weights.ignored };
  } finally {
    await weights.close();
  }
}

const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";

/**
 * Where the weights are: model.safetensors alone, or each shard file the index names with the tensors it should
 * hold. `path` is the file to name in errors.
 */
async function weightFiles(
  dir: string,
): Promise<{ path: string; files: Map<string, Set<string> | undefined> }> {
  const single = join(dir, SINGLE_FILE);
  if (await exists(single)) return { path: single, files: new Map([[SINGLE_FILE, undefined]]) };
  const path = join(dir, INDEX_FILE);
  if (!(await exists(path))) {
    throw new InputError(
      `${dir} holds neither ${SINGLE_FILE} nor ${INDEX_FILE}; one of them holds the weights`,
    );
  }
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(await readFile(path, "utf8")) as { weight_map?: unknown }).weight_map;
  } catch (error) {
    throw new InputError(`${path} is not JSON: ${(error as Error).message}`);
  }
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new InputError(`${path} has no "weight_map" object (tensor name → shard file name)`);
  }
  const files = new Map<string, Set<string>>();
  for (const [name, file] of Object.entries(weightMap)) {
    // Names only: the index must not send the reader outside the model directory.
    if (typeof file !== "string" || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith(".")) {
      throw new InputError(
        `${path}: tensor ${name} maps to ${JSON.stringify(file)}; expected a .safetensors file name in ${dir}`,
      );
    }
    files.set(file, (files.get(file) ?? new Set()).add(name));
  }
  return { path, files };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

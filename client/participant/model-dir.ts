// A model directory as Hugging Face lays it out: config.json, the weights (model.safetensors, or the shards that
// model.safetensors.index.json lists, as larger models ship), and a tokenizer (tokenizer.json, or vocab.json +
// merges.txt, or none for bytes when the model's vocabulary is sized for them). Clients need the config and
// tokenizer; the weights come from the server. The operator also reads the weights to create a run.
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

/** A model directory's config alone: what the operator needs to read its weights (run create, run upload). */
export async function loadModelConfig(dir: string): Promise<Omit<ModelDir, "tokenizer">> {
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
  return { dir, config: parseModelConfig(json) };
}

/** A model directory's config and tokenizer: what a client trains with. */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  const { config } = await loadModelConfig(dir);
  const tokenizer = await loadTokenizer(dir, config.vocabSize);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new InputError(
      `the tokenizer in ${dir} has ${tokenizer.vocabSize} ids but config.json's vocab_size is ${config.vocabSize}`,
    );
  }
  return { dir, config, tokenizer };
}

/**
 * The weights in the model's own tensor order (the order of the run's plan), checked against its config, each
 * read from its file when asked for: a model of any size costs the open files, not its weights. The tensors carry
 * the model's own Hugging Face names whatever prefix the file gave them (storedPrefix), so the run's plan and its
 * exports do too. Tensors the model does not use (e.g. saved attention-mask buffers, or an lm_head.weight that
 * copies a tied embedding) are returned by name, with the file's names, in `ignored`. Call `close` when done.
 */
export async function openModelWeights(
  model: Omit<ModelDir, "tokenizer">,
): Promise<{ tensors: LazyTensor[]; ignored: string[]; close(): Promise<void> }> {
  const { path, files } = await weightFiles(model.dir);
  const readers: SafetensorsReader[] = [];
  const close = async () => {
    await Promise.all(readers.map((reader) => reader.close()));
  };
  try {
    const byName = new Map<string, StoredTensor>();
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
    const prefix = storedPrefix(model.config, byName.keys());
    const tensors = expected.map((spec): LazyTensor => {
      const stored = prefix + spec.name;
      const found = byName.get(stored);
      if (!found)
        throw new InputError(
          `${path} lacks tensor ${stored} (shape [${spec.shape}]) that config.json implies`,
        );
      if (found.shape.join() !== spec.shape.join()) {
        throw new InputError(
          `${path}: tensor ${stored} has shape [${found.shape}]; config.json implies [${spec.shape}]`,
        );
      }
      return {
        name: spec.name,
        shape: [...spec.shape],
        read: (start, count) => found.reader.readRange(stored, start, count),
      };
    });
    const used = new Set(expected.map((s) => prefix + s.name));
    const ignored = [...byName.keys()].filter((name) => !used.has(name));
    if (ignored.includes(HEAD) && !expected.some((s) => s.name === HEAD)) {
      const embedding = tensors.find((t) => t.name === TIED_EMBEDDING[model.config.modelType]) as LazyTensor;
      await checkTiedHead(path, byName.get(HEAD) as StoredTensor, embedding, prefix);
      ignored[ignored.indexOf(HEAD)] =
        `${HEAD} (equal to ${prefix}${embedding.name}, which the head is tied to)`;
    }
    ignored.push(...unindexed);
    return { tensors, ignored, close };
  } catch (error) {
    await close();
    throw error;
  }
}

interface StoredTensor {
  reader: SafetensorsReader;
  shape: number[];
}

const HEAD = "lm_head.weight";
/** The tensor an output head tied to the embeddings shares, by family. */
const TIED_EMBEDDING: Record<ModelConfig["modelType"], string> = {
  gpt2: "wte.weight",
  llama: "model.embed_tokens.weight",
  qwen2: "model.embed_tokens.weight",
};
/** GPT2LMHeadModel's base_model_prefix: its save_pretrained names GPT2Model's tensors transformer.wte.weight, … */
const GPT2_HEAD_MODEL_PREFIX = "transformer.";

/**
 * What the file's names put before the model's own (Hugging Face's base-model names, as openai-community/gpt2
 * ships them). A GPT-2 saved as GPT2LMHeadModel (DialoGPT, mGPT) prefixes every one. A file that prefixes only
 * some is no layout transformers writes: it is refused, naming a prefixed tensor it lacks.
 */
function storedPrefix(config: ModelConfig, names: Iterable<string>): string {
  if (config.modelType !== "gpt2") return "";
  for (const name of names) if (name.startsWith(GPT2_HEAD_MODEL_PREFIX)) return GPT2_HEAD_MODEL_PREFIX;
  return "";
}

/** Elements of the head and the embedding compared at a time. */
const COMPARE_ELEMENTS = 1 << 20;
/** Equal as weights: −0 and +0 give the same logits, and a NaN copied is still a copy. */
const sameValue = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));

/**
 * The model's output head is its embedding (tied), so a saved lm_head.weight is only a copy of it, as some
 * checkpoints store. One that differs would be a head the file has and training would not use: refused. Compared
 * a slice at a time, so that a large vocabulary costs two slices, not two copies of the embedding.
 */
async function checkTiedHead(path: string, head: StoredTensor, embedding: LazyTensor, prefix: string) {
  const refuse = (how: string) =>
    new InputError(
      `${path}: ${HEAD} ${how} ${prefix}${embedding.name}, but config.json ties the output head to the embeddings; expected no ${HEAD}, or a copy of ${prefix}${embedding.name}`,
    );
  if (head.shape.join() !== embedding.shape.join())
    throw refuse(`has shape [${head.shape}], unlike the [${embedding.shape}] of`);
  const total = embedding.shape.reduce((a, b) => a * b, 1);
  for (let start = 0; start < total; start += COMPARE_ELEMENTS) {
    const count = Math.min(COMPARE_ELEMENTS, total - start);
    const [a, b] = await Promise.all([
      head.reader.readRange(HEAD, start, count),
      embedding.read(start, count),
    ]);
    for (let i = 0; i < count; i++) {
      if (!sameValue(a[i] as number, b[i] as number))
        throw refuse(`differs (element ${start + i}: ${a[i]} against ${b[i]}) from`);
    }
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

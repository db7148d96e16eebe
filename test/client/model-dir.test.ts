// Model directories as Hugging Face ships them: one model.safetensors, or shards listed by
// model.safetensors.index.json (larger models). Both must give the same weights in the model's own order.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { ByteTokenizer } from "../../client/formats/tokenizer.ts";
import {
  loadModelConfig,
  loadModelDir,
  loadModelWeights,
  openModelWeights,
} from "../../client/participant/model-dir.ts";
import { TokenizerError } from "../../core/formats/errors.ts";
import { type NamedTensor, readSafetensors, writeSafetensors } from "../../core/formats/safetensors.ts";
import { safetensorsImage } from "../../core/formats/safetensors-image.ts";

let root: string;
let single: string;
let tensors: NamedTensor[];
let count = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "ferret-model-dir-"));
  single = join(root, "single");
  await writeSeededModel(single, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
  tensors = (await readSafetensors(join(single, "model.safetensors"))).tensors;
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A copy of the single-file model split into two shards (tensors in reverse order, as shards need not follow
 * the model's order), with an index written from `weightMap` (default: where each tensor really is). */
async function sharded(
  options: { weightMap?: (real: Record<string, string>) => unknown; extra?: NamedTensor } = {},
) {
  const dir = join(root, `sharded-${count++}`);
  await writeSeededModel(dir, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
  await rm(join(dir, "model.safetensors"));
  const reversed = [...tensors].reverse();
  const half = Math.ceil(reversed.length / 2);
  const shards = [reversed.slice(0, half), reversed.slice(half)];
  const real: Record<string, string> = {};
  for (const [i, part] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), i === 1 && options.extra ? [...part, options.extra] : part);
    for (const t of part) real[t.name] = file;
  }
  const weightMap = options.weightMap ? options.weightMap(real) : real;
  await writeFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  return dir;
}

const load = async (dir: string) => loadModelWeights(await loadModelDir(dir));

describe("model weights", () => {
  it("from shards listed by model.safetensors.index.json equal the single file's, in the model's order", async () => {
    const fromSingle = await load(single);
    const fromShards = await load(await sharded());
    expect(fromShards.tensors.map((t) => t.name)).toEqual(fromSingle.tensors.map((t) => t.name));
    expect(fromShards.tensors).toEqual(fromSingle.tensors);
    expect(fromShards.ignored).toEqual([]);
  });

  it("open lazily: any run of elements read from a shard equals the same run of the loaded tensor", async () => {
    const dir = await sharded();
    const loaded = await load(dir);
    const opened = await openModelWeights(await loadModelDir(dir));
    try {
      expect(opened.tensors.map((t) => [t.name, t.shape])).toEqual(
        loaded.tensors.map((t) => [t.name, t.shape]),
      );
      for (const [i, tensor] of opened.tensors.entries()) {
        const data = loaded.tensors[i]?.data as Float32Array;
        const start = Math.floor(data.length / 3);
        expect(await tensor.read(start, data.length - start)).toEqual(data.subarray(start));
      }
    } finally {
      await opened.close();
    }
  });

  it("report a shard's tensor that the index does not list as ignored", async () => {
    const extra = { name: "attn.masked_bias", shape: [1], data: Float32Array.of(-1e4) };
    const { ignored } = await load(await sharded({ extra }));
    expect(ignored).toEqual(["attn.masked_bias (in model-00002-of-00002.safetensors, not in the index)"]);
  });

  it("refuse an index naming a missing shard, or placing a tensor in a shard that lacks it", async () => {
    const missing = await sharded({
      weightMap: (real) => ({ ...real, "wte.weight": "model-00003-of-00003.safetensors" }),
    });
    await expect(load(missing)).rejects.toThrow(/names model-00003-of-00003\.safetensors, which is missing/);
    const misplaced = await sharded({
      weightMap: (real) => {
        const other = real["wte.weight"]?.includes("00001") ? "00002" : "00001";
        return { ...real, "wte.weight": `model-${other}-of-00002.safetensors` };
      },
    });
    await expect(load(misplaced)).rejects.toThrow(
      /places tensor wte\.weight in model-0000\d-of-00002\.safetensors, which lacks it/,
    );
  });

  it("refuse an index that would read outside the model directory, or that has no weight_map", async () => {
    const escaping = await sharded({
      weightMap: (real) => ({ ...real, "wte.weight": "../single/model.safetensors" }),
    });
    await expect(load(escaping)).rejects.toThrow(
      /tensor wte\.weight maps to "\.\.\/single\/model\.safetensors"; expected a \.safetensors file name/,
    );
    const noMap = await sharded({ weightMap: () => ["not", "a", "map"] });
    await expect(load(noMap)).rejects.toThrow(/has no "weight_map" object/);
  });

  it("refuse a directory with neither model.safetensors nor an index", async () => {
    const dir = join(root, "no-weights");
    await writeSeededModel(dir, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
    await rm(join(dir, "model.safetensors"));
    await expect(load(dir)).rejects.toThrow(
      /holds neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
    await copyFile(join(single, "model.safetensors"), join(dir, "model.safetensors"));
    await expect(load(dir)).resolves.toMatchObject({ ignored: [] });
  });
});

/** A copy of the single-file model whose tensors are renamed by `rename` (undefined drops one), plus `extra`. */
async function relaid(rename: (name: string) => string | undefined, extra: NamedTensor[] = []) {
  const dir = join(root, `relaid-${count++}`);
  await writeSeededModel(dir, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
  const renamed = tensors.flatMap((t) => {
    const name = rename(t.name);
    return name === undefined ? [] : [{ ...t, name }];
  });
  await writeSafetensors(join(dir, "model.safetensors"), [...renamed, ...extra]);
  return dir;
}

const wte = () => tensors.find((t) => t.name === "wte.weight") as NamedTensor;
const head = (data: Float32Array, shape = wte().shape) => ({ name: "lm_head.weight", shape, data });

/** The bytes of checkpoint 0 that `run create` would upload from `dir`. */
async function checkpointZero(dir: string): Promise<Uint8Array> {
  const opened = await openModelWeights(await loadModelDir(dir));
  try {
    const image = safetensorsImage(opened.tensors);
    const bytes = new Uint8Array(image.byteLength);
    await image.readInto(0, bytes);
    return bytes;
  } finally {
    await opened.close();
  }
}

describe("GPT-2 saved as GPT2LMHeadModel (transformer.-prefixed names)", () => {
  it("gives the same weights under the same Hugging Face names, so checkpoint 0 is byte for byte the same", async () => {
    const prefixed = await relaid((name) => `transformer.${name}`);
    const loaded = await load(prefixed);
    expect(loaded).toEqual(await load(single));
    expect(loaded.tensors.map((t) => t.name)).toContain("wte.weight");
    expect(await checkpointZero(prefixed)).toEqual(await checkpointZero(single));
  });

  it("accepts an lm_head.weight equal to the tied wte.weight, and says why it is not used", async () => {
    const prefixed = await relaid((name) => `transformer.${name}`, [head(wte().data)]);
    const { tensors: found, ignored } = await load(prefixed);
    expect(found).toEqual((await load(single)).tensors);
    expect(ignored).toEqual(["lm_head.weight (equal to transformer.wte.weight, which the head is tied to)"]);
    const plain = await relaid((name) => name, [head(wte().data)]);
    expect((await load(plain)).ignored).toEqual([
      "lm_head.weight (equal to wte.weight, which the head is tied to)",
    ]);
  });

  it("refuses an lm_head.weight that differs from the tied embedding in any element", async () => {
    const size = wte().data.length;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: size - 1 }),
        fc.float({ noDefaultInfinity: true }),
        fc.boolean(),
        async (index, value, prefixed) => {
          const was = wte().data[index] as number;
          fc.pre(value !== was && !(Number.isNaN(value) && Number.isNaN(was)));
          const data = wte().data.slice();
          data[index] = value;
          const dir = await relaid((name) => (prefixed ? `transformer.${name}` : name), [head(data)]);
          const embedding = prefixed ? "transformer.wte.weight" : "wte.weight";
          await expect(load(dir)).rejects.toThrow(
            `model.safetensors: lm_head.weight differs (element ${index}: ${value} against ${was}) from ${embedding}, but config.json ties the output head to the embeddings; expected no lm_head.weight, or a copy of ${embedding}`,
          );
        },
      ),
      { numRuns: 15 },
    );
    const [rows, columns] = wte().shape as [number, number];
    const short = await relaid(
      (name) => name,
      [head(new Float32Array((rows - 1) * columns), [rows - 1, columns])],
    );
    await expect(load(short)).rejects.toThrow(
      `lm_head.weight has shape [${rows - 1},${columns}], unlike the [${rows},${columns}] of wte.weight`,
    );
  });

  it("refuses a file that prefixes only some of the model's tensors, naming one it lacks", async () => {
    const mixed = await relaid((name) => (name.startsWith("h.0.") ? name : `transformer.${name}`));
    await expect(load(mixed)).rejects.toThrow(
      /model\.safetensors lacks tensor transformer\.h\.0\.ln_1\.weight \(shape \[16\]\) that config\.json implies/,
    );
  });

  it("reads prefixed shards listed by an index", async () => {
    const dir = await sharded({
      weightMap: (real) => Object.fromEntries(Object.entries(real).map(([k, v]) => [`transformer.${k}`, v])),
    });
    // The shards themselves carry the prefixed names too.
    for (const file of ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
      const { tensors: part } = await readSafetensors(join(dir, file));
      await writeSafetensors(
        join(dir, file),
        part.map((t) => ({ ...t, name: `transformer.${t.name}` })),
      );
    }
    expect(await load(dir)).toEqual(await load(single));
  });
});

describe("a LLaMA whose head is tied to its embeddings", () => {
  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 257,
    max_position_embeddings: 8,
    hidden_size: 8,
    intermediate_size: 12,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    tie_word_embeddings: true,
  };

  it("accepts a saved lm_head.weight equal to model.embed_tokens.weight and refuses one that differs", async () => {
    const dir = join(root, `llama-${count++}`);
    await writeSeededModel(dir, config, 3);
    const { tensors: saved } = await readSafetensors(join(dir, "model.safetensors"));
    const embed = saved.find((t) => t.name === "model.embed_tokens.weight") as NamedTensor;
    await writeSafetensors(join(dir, "model.safetensors"), [...saved, head(embed.data, embed.shape)]);
    const { tensors: found, ignored } = await load(dir);
    expect(found).toEqual(saved);
    expect(ignored).toEqual([
      "lm_head.weight (equal to model.embed_tokens.weight, which the head is tied to)",
    ]);
    const other = embed.data.map((x) => x * 2);
    await writeSafetensors(join(dir, "model.safetensors"), [...saved, head(other, embed.shape)]);
    await expect(load(dir)).rejects.toThrow(
      /lm_head\.weight differs \(element \d+: .*\) from model\.embed_tokens\.weight/,
    );
  });
});

describe("a model directory without tokenizer files", () => {
  const gpt2 = (vocabSize: number) => ({
    ...gpt2Config({ layers: 1, width: 8, heads: 2, context: 8 }),
    vocab_size: vocabSize,
  });

  it("uses bytes for a model sized for them, as the demo's seeded bases are", async () => {
    expect((await loadModelDir(single)).tokenizer).toBeInstanceOf(ByteTokenizer);
  });

  it("is refused for a real vocabulary, naming the files looked for and the vocab_size", async () => {
    const dir = join(root, `config-only-${count++}`);
    await mkdir(dir);
    await writeFile(join(dir, "config.json"), JSON.stringify(gpt2(50257)));
    const loading = loadModelDir(dir);
    await expect(loading).rejects.toThrow(TokenizerError);
    await expect(loading).rejects.toThrow(
      `${dir} holds no tokenizer files (looked for tokenizer.json, or vocab.json + merges.txt); bytes stand in only for a model with a vocab_size of 257 to 512, and config.json's is 50257`,
    );
  });
  it("still gives the operator its weights: creating a run needs no tokenizer", async () => {
    const dir = join(root, `weights-only-${count++}`);
    await writeSeededModel(dir, gpt2(1000), 3);
    await expect(loadModelDir(dir)).rejects.toThrow(TokenizerError);
    const opened = await openModelWeights(await loadModelConfig(dir));
    try {
      expect(opened.tensors.map((t) => t.name)).toContain("wte.weight");
    } finally {
      await opened.close();
    }
  });
});

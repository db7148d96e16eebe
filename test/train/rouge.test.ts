import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lcsLength, meanRougeL, rougeL, rougeLText, rougeTokens } from "../../client/train/rouge.ts";

describe("LCS", () => {
  it("matches hand-worked examples", () => {
    expect(lcsLength([..."ABCBDAB"], [..."BDCABA"])).toBe(4); // e.g. BCBA
    expect(lcsLength([..."abc"], [])).toBe(0);
    expect(lcsLength([1, 2, 3], [3, 2, 1])).toBe(1);
  });

  it("is symmetric, bounded by the shorter length, and found in both as a subsequence bound", () => {
    const seq = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 15 });
    fc.assert(
      fc.property(seq, seq, (a, b) => {
        const n = lcsLength(a, b);
        expect(lcsLength(b, a)).toBe(n);
        expect(n).toBeLessThanOrEqual(Math.min(a.length, b.length));
        expect(lcsLength(a, a)).toBe(a.length);
        expect(lcsLength([...a, ...b], b)).toBe(b.length); // b is a subsequence of a ++ b
      }),
    );
  });
});

describe("Rouge-L", () => {
  it("matches a hand-computed score", () => {
    // Lin (2004)'s example: reference "police killed the gunman", candidate "police kill the gunman":
    // LCS = 3 ("police the gunman"), P = R = 3/4, F = 0.75.
    expect(rougeLText("police kill the gunman", "police killed the gunman")).toEqual({
      precision: 0.75,
      recall: 0.75,
      f1: 0.75,
    });
    // Candidate "the cat sat" vs reference "the cat sat on the mat": P = 1, R = 1/2, F = 2/3.
    const s = rougeLText("The cat, sat!", "the cat sat on the mat");
    expect(s.precision).toBe(1);
    expect(s.recall).toBe(0.5);
    expect(s.f1).toBeCloseTo(2 / 3, 12);
  });

  it("lies in [0, 1], is 1 for identical text and 0 against nothing", () => {
    const words = fc.array(fc.constantFrom("a", "b", "c", "d"), { maxLength: 12 });
    fc.assert(
      fc.property(words, words, (a, b) => {
        const { precision, recall, f1 } = rougeL(a, b);
        for (const x of [precision, recall, f1]) {
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThanOrEqual(1);
        }
        expect(rougeL(b, a).f1).toBeCloseTo(f1, 12);
        if (a.length > 0) expect(rougeL(a, a).f1).toBe(1);
        expect(rougeL(a, []).f1).toBe(0);
      }),
    );
  });

  it("tokenizes like the common scorer and averages over a test set", () => {
    expect(rougeTokens("Call me Ishmael. Some years ago—never mind how long")).toEqual([
      "call",
      "me",
      "ishmael",
      "some",
      "years",
      "ago",
      "never",
      "mind",
      "how",
      "long",
    ]);
    expect(
      meanRougeL([
        { candidate: "a b", reference: "a b" },
        { candidate: "x", reference: "a b" },
      ]),
    ).toBe(0.5);
  });
});

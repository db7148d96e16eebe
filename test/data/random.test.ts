import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SeededRandom, shuffled } from "../../client/data/random.ts";

describe("SeededRandom", () => {
  it("is pinned: the same seed gives the same numbers on every platform and release", () => {
    const random = new SeededRandom(42);
    expect([random.nextUint32(), random.nextUint32(), random.nextUint32()]).toEqual(PINNED_42);
  });

  it("gives different streams for different seeds or stream numbers", () => {
    const draw = (seed: number, stream: number) => {
      const r = new SeededRandom(seed, stream);
      return [r.nextUint32(), r.nextUint32()];
    };
    expect(draw(1, 0)).not.toEqual(draw(2, 0));
    expect(draw(1, 0)).not.toEqual(draw(1, 1));
    expect(draw(7, 3)).toEqual(draw(7, 3));
  });

  it("draws integers in [0, n) with roughly equal frequency", () => {
    const random = new SeededRandom(9);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[random.nextInt(6)]++;
    // Each count is Binomial(60000, 1/6): mean 10000, sd ≈ 91; 6 sd is far beyond chance.
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(550);
  });

  it("rejects a non-integer seed or range", () => {
    expect(() => new SeededRandom(1.5)).toThrow(RangeError);
    expect(() => new SeededRandom(1).nextInt(0)).toThrow(/n must be an integer in \[1, 2\^32\]/);
  });
});

describe("shuffled", () => {
  it("returns a permutation, the same one for the same seed", () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), fc.integer(), (items, seed) => {
        const once = shuffled(items, seed);
        expect(once).toEqual(shuffled(items, seed));
        expect([...once].sort((a, b) => a - b)).toEqual([...items].sort((a, b) => a - b));
      }),
    );
  });

  it("actually moves things", () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    expect(shuffled(items, 1)).not.toEqual(items);
    expect(shuffled(items, 1)).not.toEqual(shuffled(items, 2));
  });
});

const PINNED_42 = [4182765417, 1586569524, 1239820304];

/**
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC 2011),
 * bit-exact with Random123's philox4x32 at 10 rounds.
 *
 * ## Stream layout — the single place it is defined
 * Every random number in Ferret is one 32-bit word of Philox4x32-10(counter, key):
 * - **key** = (low 32 bits, high 32 bits) of the round's 64-bit seed.
 * - **counter** = (c0, c1, c2, c3) = (slot, lane, block index b, family tag).
 *   Family tags: 0 gaussian, 1 rademacher, 2 sketch.
 * - gaussian, basis k of block b, element j (j counts from the block's first element):
 *   counter (4·⌊j/16⌋ + (j mod 4), k, b, 0), word w = ⌊j/4⌋ mod 4. Words 0,1 make one Box–Muller pair
 *   (r·cos, r·sin), words 2,3 the other; element j takes output w of that counter. (Sixteen consecutive elements
 *   come from four consecutive counters, so a 4-lane SIMD Philox yields them without a transpose.)
 * - sketch, block b, element j: the same slot mapping, counter (4·⌊j/16⌋ + (j mod 4), 0, b, 2), word ⌊j/4⌋ mod 4.
 * - rademacher, block b, element j, basis k: counter (j, ⌊k/128⌋, b, 1); bit t = k mod 128 of the 128-bit
 *   output, read little-endian (word ⌊t/32⌋, bit t mod 32); bit set means −1. Byte q of that output holds the
 *   signs of bases 128·⌊k/128⌋ + 8q … + 7, which is what the sign-table fast path consumes.
 * Any element of any basis is therefore computable on its own: shards and threads never need each other.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32, computed exactly in doubles. */
function mulhi32(a: number, b: number): number {
  const lowProduct = a * (b & 0xffff); // < 2^48, exact
  const highProduct = a * (b >>> 16); // < 2^48, exact
  const highUpper = Math.floor(highProduct / 65536);
  const highLower = highProduct - highUpper * 65536;
  return (highUpper + Math.floor((highLower * 65536 + lowProduct) / 4294967296)) >>> 0;
}

/** Philox4x32-10 of counter (c0..c3) and key (k0, k1), written into `out` as four u32. */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = c2 >>> 0;
  let x3 = c3 >>> 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      key0 = (key0 + W0) >>> 0;
      key1 = (key1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi32(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

export const FAMILY_TAG = { gaussian: 0, rademacher: 1, sketch: 2 } as const;

/** Key words of a 64-bit seed: [low 32 bits, high 32 bits]. */
export function seedKey(seed: bigint): [number, number] {
  return [Number(seed & 0xffffffffn), Number((seed >> 32n) & 0xffffffffn)];
}

/** Counter slot (c0) and output word of element j under the gaussian/sketch slot mapping above. */
export function slotOf(j: number): { slot: number; word: number } {
  return { slot: 4 * Math.floor(j / 16) + (j % 4), word: Math.floor(j / 4) % 4 };
}

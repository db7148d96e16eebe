/**
 * A small seeded PRNG for shuffling data, identical on every platform (32-bit integer operations only).
 *
 * State is a Weyl sequence (add the 32-bit golden ratio 0x9E3779B9 each draw, as SplitMix does), and each
 * state is passed through Chris Wellons' "lowbias32" integer hash, whose avalanche makes consecutive states
 * look independent. Not cryptographic, and not the Philox generator of the reconstruction path: this only
 * decides the order in which a client sees its own data.
 */
export class SeededRandom {
  private state: number;

  constructor(seed: number, stream = 0) {
    if (!Number.isInteger(seed) || !Number.isInteger(stream)) {
      throw new RangeError(`seed and stream must be integers, got ${seed} and ${stream}`);
    }
    // Mix the stream in through the hash so (seed, stream) pairs start far apart.
    this.state = hash32((seed >>> 0) ^ hash32((stream >>> 0) ^ 0x85ebca6b));
  }

  /** A uniform integer in [0, 2^32). */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    return hash32(this.state);
  }

  /** A uniform integer in [0, n), without modulo bias (draws above the largest multiple of n are retried). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32)
      throw new RangeError(`n must be an integer in [1, 2^32], got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

function hash32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A Fisher–Yates shuffled copy of `items`; the same seed and stream always give the same order. */
export function shuffled<T>(items: readonly T[], seed: number, stream = 0): T[] {
  const out = items.slice();
  const random = new SeededRandom(seed, stream);
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.nextInt(i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

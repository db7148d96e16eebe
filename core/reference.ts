/**
 * The executable specification of the three projection families: scalar, one element at a time, written for
 * reading rather than speed. The WebAssembly kernels must produce the same bytes; tests check that they do.
 * Layout of the random streams: see philox.ts. Summation orders (all sums start from +0, in float64):
 *
 * gaussian    γ_k = f32(((s0 + s1) + (s2 + s3)) / k_b), s_l = Σ Δ_j·v_kj over j ≡ l (mod 4) ascending, with Δ
 *             padded by zeros to a multiple of 16 elements;  Δ̃_j = Σ_k γ_k·v_kj, k ascending over γ_k ≠ 0.
 * rademacher  H_g[m] = Σ Δ_j over j ascending with sign byte g of element j equal to m;
 *             γ_{8g+i} = f32(Σ_{m=0..255} s_i(m)·H_g[m] / k_b);  Δ̃_j = Σ_g T_g[byte_g(j)], g ascending, where
 *             T_g[m] = Σ_{i=0..7} s_i(m)·γ_{8g+i}, i ascending, and s_i(m) = −1 if bit i of m is set, else +1.
 * sketch      bucket h_j = ⌊(u_j >>> 1)·k_b / 2^31⌋, sign σ_j = −1 if bit 0 of u_j is set;
 *             γ_h = f32(Σ_{h_j = h} σ_j·Δ_j), j ascending;  Δ̃_j = σ_j·γ_{h_j}.
 * Applying a reconstruction: w_j ← f32(w_j − scale·Δ̃_j), computed in float64.
 */
import { boxMuller } from "./normal.ts";
import { FAMILY_TAG, philox4x32, slotOf } from "./philox.ts";

export type Family = "gaussian" | "rademacher" | "sketch";
export const FAMILIES: readonly Family[] = ["gaussian", "rademacher", "sketch"];

export interface StreamKey {
  key: [number, number];
  block: number;
}

const words = new Uint32Array(4);

/** Entry j of gaussian basis k. */
export function gaussianEntry({ key, block }: StreamKey, k: number, j: number): number {
  const { slot, word } = slotOf(j);
  philox4x32(slot, k, block, FAMILY_TAG.gaussian, key[0], key[1], words);
  const pair = word < 2 ? 0 : 2;
  const [rCos, rSin] = boxMuller(words[pair] as number, words[pair + 1] as number);
  return word % 2 === 0 ? rCos : rSin;
}

/** Sign byte g (signs of bases 8g … 8g+7) of element j. */
export function rademacherByte({ key, block }: StreamKey, g: number, j: number): number {
  philox4x32(j, g >>> 4, block, FAMILY_TAG.rademacher, key[0], key[1], words);
  const q = g % 16;
  return ((words[q >>> 2] as number) >>> (8 * (q % 4))) & 0xff;
}

/** Entry j of rademacher basis k: ±1. */
export function rademacherEntry(stream: StreamKey, k: number, j: number): number {
  return (rademacherByte(stream, k >>> 3, j) >>> (k % 8)) & 1 ? -1 : 1;
}

/** Bucket and sign of element j in a sketch with kb buckets. */
export function sketchEntry(
  { key, block }: StreamKey,
  kb: number,
  j: number,
): { bucket: number; sign: number } {
  const { slot, word } = slotOf(j);
  philox4x32(slot, 0, block, FAMILY_TAG.sketch, key[0], key[1], words);
  const u = words[word] as number;
  return { bucket: sketchBucket(u, kb), sign: u & 1 ? -1 : 1 };
}

/** ⌊(u >>> 1)·k_b / 2^31⌋ in BigInt: the product passes 2^53 once k_b > 2^22, and a double would round it. */
export function sketchBucket(u: number, kb: number): number {
  return Number((BigInt(u >>> 1) * BigInt(kb)) >> 31n);
}

const signOf = (m: number, i: number) => ((m >>> i) & 1 ? -1 : 1);

/** Coefficients of one block's delta (the whole block, element 0 first). */
export function referenceProject(
  family: Family,
  stream: StreamKey,
  kb: number,
  delta: Float32Array,
): Float32Array {
  const gamma = new Float32Array(kb);
  if (family === "gaussian") {
    const padded = Math.ceil(delta.length / 16) * 16;
    for (let k = 0; k < kb; k++) {
      let [s0, s1, s2, s3] = [0, 0, 0, 0];
      for (let j = 0; j < padded; j += 4) {
        s0 += (delta[j] ?? 0) * gaussianEntry(stream, k, j);
        s1 += (delta[j + 1] ?? 0) * gaussianEntry(stream, k, j + 1);
        s2 += (delta[j + 2] ?? 0) * gaussianEntry(stream, k, j + 2);
        s3 += (delta[j + 3] ?? 0) * gaussianEntry(stream, k, j + 3);
      }
      gamma[k] = (s0 + s1 + (s2 + s3)) / kb;
    }
  } else if (family === "rademacher") {
    for (let g = 0; g < Math.ceil(kb / 8); g++) {
      const histogram = new Float64Array(256);
      for (let j = 0; j < delta.length; j++) {
        const m = rademacherByte(stream, g, j);
        histogram[m] = (histogram[m] as number) + (delta[j] as number);
      }
      for (let i = 0; i < 8 && 8 * g + i < kb; i++) {
        let sum = 0;
        for (let m = 0; m < 256; m++) sum += signOf(m, i) * (histogram[m] as number);
        gamma[8 * g + i] = sum / kb;
      }
    }
  } else {
    const sums = new Float64Array(kb);
    for (let j = 0; j < delta.length; j++) {
      const { bucket, sign } = sketchEntry(stream, kb, j);
      sums[bucket] = (sums[bucket] as number) + sign * (delta[j] as number);
    }
    gamma.set(sums);
  }
  return gamma;
}

/** Δ̃_j of one block element j from the block's coefficients. */
export function referenceEstimate(family: Family, stream: StreamKey, gamma: Float32Array, j: number): number {
  const kb = gamma.length;
  let acc = 0;
  if (family === "gaussian") {
    // A zero coefficient adds ±0, which never changes a sum that starts at +0: skipping it is exact.
    for (let k = 0; k < kb; k++)
      if (gamma[k] !== 0) acc += (gamma[k] as number) * gaussianEntry(stream, k, j);
  } else if (family === "rademacher") {
    for (let g = 0; g < Math.ceil(kb / 8); g++) {
      const m = rademacherByte(stream, g, j);
      let tableEntry = 0;
      for (let i = 0; i < 8 && 8 * g + i < kb; i++) tableEntry += signOf(m, i) * (gamma[8 * g + i] as number);
      acc += tableEntry;
    }
  } else {
    const { bucket, sign } = sketchEntry(stream, kb, j);
    acc = sign * (gamma[bucket] as number);
  }
  return acc;
}

/** w[i] ← f32(w[i] − scale·Δ̃_{j0+i}) for a slice of one block starting at block element j0. */
export function referenceReconstruct(
  family: Family,
  stream: StreamKey,
  gamma: Float32Array,
  weights: Float32Array,
  j0: number,
  scale: number,
): void {
  for (let i = 0; i < weights.length; i++) {
    weights[i] = (weights[i] as number) - scale * referenceEstimate(family, stream, gamma, j0 + i);
  }
}

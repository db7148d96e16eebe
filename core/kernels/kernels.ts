// AssemblyScript: the hot loops of core/ as WebAssembly SIMD. The specification they implement, bit for bit,
// is core/reference.ts (summation orders) with core/philox.ts (stream layout) and core/normal.ts (Box–Muller).
// Buffers are raw pointers into linear memory laid out by core/kernels/runtime.mjs; indices are block-local.
// No fused multiply-add and no reassociation: every f32/f64 operation here appears in the reference too.

const M0: i32 = 0xd2511f53;
const M1: i32 = 0xcd9e8d57;
const W0: i32 = 0x9e3779b9;
const W1: i32 = 0xbb67ae85;
const TAG_GAUSSIAN: i32 = 0;
const TAG_RADEMACHER: i32 = 1;
const TAG_SKETCH: i32 = 2;

// Scratch for one 4-lane Philox output: words X0..X3, lane i of X_w at SCRATCH + 16w + 4i; then 4 f32x4 normals.
let SCRATCH: usize = 0;

// Round keys of the current call, 10 rounds × (key0, key1) splatted, at ROUND_KEYS (set by setKey).
let ROUND_KEYS: usize = 0;

export function heapBase(): usize {
  SCRATCH = (__heap_base + 15) & ~15;
  ROUND_KEYS = SCRATCH + 256;
  return ROUND_KEYS + 320;
}

// Precomputes the ten round keys of a Philox key so the inner loops load them instead of re-splatting.
function setKey(key0: i32, key1: i32): void {
  let k0 = key0;
  let k1 = key1;
  for (let round = 0; round < 10; round++) {
    v128.store(ROUND_KEYS + (<usize>round << 5), i32x4.splat(k0));
    v128.store(ROUND_KEYS + (<usize>round << 5), i32x4.splat(k1), 16);
    k0 += W0;
    k1 += W1;
  }
}

// Philox4x32-10 on four counters at once, with the key set by setKey; the four output words go to SCRATCH.
@inline
function philox4(c0: v128, c1: v128, c2: v128, c3: v128): void {
  let x0 = c0;
  let x1 = c1;
  let x2 = c2;
  let x3 = c3;
  const m0 = i32x4.splat(M0);
  const m1 = i32x4.splat(M1);
  for (let round = 0; round < 10; round++) {
    const p0lo = i64x2.extmul_low_i32x4_u(x0, m0);
    const p0hi = i64x2.extmul_high_i32x4_u(x0, m0);
    const p1lo = i64x2.extmul_low_i32x4_u(x2, m1);
    const p1hi = i64x2.extmul_high_i32x4_u(x2, m1);
    const lo0 = i32x4.shuffle(p0lo, p0hi, 0, 2, 4, 6);
    const hi0 = i32x4.shuffle(p0lo, p0hi, 1, 3, 5, 7);
    const lo1 = i32x4.shuffle(p1lo, p1hi, 0, 2, 4, 6);
    const hi1 = i32x4.shuffle(p1lo, p1hi, 1, 3, 5, 7);
    const keys = ROUND_KEYS + (<usize>round << 5);
    x0 = v128.xor(v128.xor(hi1, x1), v128.load(keys));
    x1 = lo1;
    x2 = v128.xor(v128.xor(hi0, x3), v128.load(keys, 16));
    x3 = lo0;
  }
  v128.store(SCRATCH, x0);
  v128.store(SCRATCH, x1, 16);
  v128.store(SCRATCH, x2, 32);
  v128.store(SCRATCH, x3, 48);
}

// Counters of the 4 slots of 16-element group G (slot = 4G + lane), as philox.ts defines for gaussian/sketch.
@inline
function slotCounters(group: u32): v128 {
  const base = group << 2;
  return i32x4(base, base + 1, base + 2, base + 3);
}

// ---- Box–Muller on 4 lanes (core/normal.ts, same constants, same operation order) ----

const SQRT2: f32 = 1.4142135381698608;
const LN2_HI: f32 = 0.693145751953125;
const LN2_LO: f32 = <f32>1.4286067653302226e-6;
const HALF_PI: f32 = <f32>1.5707963267948966;
const L1: f32 = 2;
const L3: f32 = <f32>(2.0 / 3.0);
const L5: f32 = <f32>(2.0 / 5.0);
const L7: f32 = <f32>(2.0 / 7.0);
const L9: f32 = <f32>(2.0 / 9.0);
const S3: f32 = <f32>(-1.0 / 6.0);
const S5: f32 = <f32>(1.0 / 120.0);
const S7: f32 = <f32>(-1.0 / 5040.0);
const S9: f32 = <f32>(1.0 / 362880.0);
const C2: f32 = -0.5;
const C4: f32 = <f32>(1.0 / 24.0);
const C6: f32 = <f32>(-1.0 / 720.0);
const C8: f32 = <f32>(1.0 / 40320.0);
const C10: f32 = <f32>(-1.0 / 3628800.0);

@inline
function fma4(a: v128, b: v128, c: v128): v128 {
  // Not fused: a product rounded to f32, then a sum rounded to f32, as in the reference.
  return f32x4.add(f32x4.mul(a, b), c);
}

// r = √(−2 ln u1) for u1 = (⌊a/2^8⌋ + 1)·2^-24 on 4 lanes.
@inline
function radius(a: v128): v128 {
  const n = i32x4.add(i32x4.shr_u(a, 8), i32x4.splat(1));
  const bits = f32x4.convert_i32x4_u(n); // exact: n ≤ 2^24
  let e = i32x4.sub(i32x4.shr_u(bits, 23), i32x4.splat(127));
  let m = v128.or(v128.and(bits, i32x4.splat(0x7fffff)), i32x4.splat(0x3f800000));
  const fold = f32x4.gt(m, f32x4.splat(SQRT2));
  m = v128.bitselect(f32x4.mul(m, f32x4.splat(0.5)), m, fold);
  e = i32x4.sub(e, fold); // fold lanes are −1
  const s = f32x4.div(f32x4.sub(m, f32x4.splat(1)), f32x4.add(m, f32x4.splat(1)));
  const s2 = f32x4.mul(s, s);
  let poly = fma4(s2, f32x4.splat(L9), f32x4.splat(L7));
  poly = fma4(s2, poly, f32x4.splat(L5));
  poly = fma4(s2, poly, f32x4.splat(L3));
  poly = fma4(s2, poly, f32x4.splat(L1));
  const lnM = f32x4.mul(s, poly);
  const exponent = f32x4.convert_i32x4_s(i32x4.sub(e, i32x4.splat(24)));
  const lnU = f32x4.add(
    f32x4.mul(exponent, f32x4.splat(LN2_HI)),
    f32x4.add(f32x4.mul(exponent, f32x4.splat(LN2_LO)), lnM),
  );
  return f32x4.sqrt(f32x4.mul(f32x4.splat(-2), lnU));
}

// Box–Muller pair from words (a, b) on 4 lanes; stores r·cos θ at out and r·sin θ at out + 16.
@inline
function boxMuller4(a: v128, b: v128, out: usize): void {
  const r = radius(a);
  const n = i32x4.shr_u(b, 8);
  const q = i32x4.shr_u(i32x4.add(n, i32x4.splat(1 << 21)), 22);
  const residual = f32x4.convert_i32x4_s(i32x4.sub(n, i32x4.shl(q, 22)));
  const x = f32x4.mul(f32x4.mul(residual, f32x4.splat(<f32>1.0 / <f32>4194304.0)), f32x4.splat(HALF_PI));
  const x2 = f32x4.mul(x, x);
  let sp = fma4(x2, f32x4.splat(S9), f32x4.splat(S7));
  sp = fma4(x2, sp, f32x4.splat(S5));
  sp = fma4(x2, sp, f32x4.splat(S3));
  const sinX = f32x4.add(x, f32x4.mul(x, f32x4.mul(x2, sp)));
  let cp = fma4(x2, f32x4.splat(C10), f32x4.splat(C8));
  cp = fma4(x2, cp, f32x4.splat(C6));
  cp = fma4(x2, cp, f32x4.splat(C4));
  cp = fma4(x2, cp, f32x4.splat(C2));
  const cosX = f32x4.add(f32x4.splat(1), f32x4.mul(x2, cp));
  const swap = i32x4.eq(v128.and(q, i32x4.splat(1)), i32x4.splat(1));
  const cosPart = v128.bitselect(sinX, cosX, swap);
  const sinPart = v128.bitselect(cosX, sinX, swap);
  const cosSign = i32x4.shl(v128.and(i32x4.add(q, i32x4.splat(1)), i32x4.splat(2)), 30);
  const sinSign = i32x4.shl(v128.and(q, i32x4.splat(2)), 30);
  v128.store(out, f32x4.mul(r, v128.xor(cosPart, cosSign)));
  v128.store(out, f32x4.mul(r, v128.xor(sinPart, sinSign)), 16);
}

// Gaussian entries of basis k for the 16 elements of group G, stored as 16 f32 at SCRATCH + 64 (element order).
@inline
function gaussian16(group: u32, k: i32, block: i32): void {
  philox4(slotCounters(group), i32x4.splat(k), i32x4.splat(block), i32x4.splat(TAG_GAUSSIAN));
  const x0 = v128.load(SCRATCH);
  const x1 = v128.load(SCRATCH, 16);
  const x2 = v128.load(SCRATCH, 32);
  const x3 = v128.load(SCRATCH, 48);
  boxMuller4(x0, x1, SCRATCH + 64);
  boxMuller4(x2, x3, SCRATCH + 96);
}

/**
 * w[i] ← f32(w[i] − scale·Σ_t γ_t v_{k_t}[j0+i]) for i < n, over the `count` non-zero coefficients γ_t (f32 at
 * gamma) of bases k_t (ascending i32 at bases). The caller drops zero coefficients: their terms are ±0, which
 * never change a sum that starts at +0, so the bytes equal those of the full sum at a cost ∝ non-zeros.
 */
export function gaussianReconstruct(
  w: usize, n: u32, j0: u32, gamma: usize, bases: usize, count: i32, key0: i32, key1: i32, block: i32, scale: f64,
): void {
  setKey(key0, key1);
  const end = j0 + n;
  const acc = SCRATCH + 128; // 16 f64 accumulators
  for (let group = j0 >> 4; group <= (end - 1) >> 4; group++) {
    let a0 = f64x2.splat(0);
    let a1 = f64x2.splat(0);
    let a2 = f64x2.splat(0);
    let a3 = f64x2.splat(0);
    let a4 = f64x2.splat(0);
    let a5 = f64x2.splat(0);
    let a6 = f64x2.splat(0);
    let a7 = f64x2.splat(0);
    for (let t = 0; t < count; t++) {
      gaussian16(group, load<i32>(bases + (<usize>t << 2)), block);
      const g = f64x2.splat(<f64>load<f32>(gamma + (<usize>t << 2)));
      const v0 = v128.load(SCRATCH, 64);
      const v1 = v128.load(SCRATCH, 80);
      const v2 = v128.load(SCRATCH, 96);
      const v3 = v128.load(SCRATCH, 112);
      a0 = f64x2.add(a0, f64x2.mul(f64x2.promote_low_f32x4(v0), g));
      a1 = f64x2.add(a1, f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v0, v0, 2, 3, 2, 3)), g));
      a2 = f64x2.add(a2, f64x2.mul(f64x2.promote_low_f32x4(v1), g));
      a3 = f64x2.add(a3, f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v1, v1, 2, 3, 2, 3)), g));
      a4 = f64x2.add(a4, f64x2.mul(f64x2.promote_low_f32x4(v2), g));
      a5 = f64x2.add(a5, f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v2, v2, 2, 3, 2, 3)), g));
      a6 = f64x2.add(a6, f64x2.mul(f64x2.promote_low_f32x4(v3), g));
      a7 = f64x2.add(a7, f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v3, v3, 2, 3, 2, 3)), g));
    }
    v128.store(acc, a0);
    v128.store(acc, a1, 16);
    v128.store(acc, a2, 32);
    v128.store(acc, a3, 48);
    v128.store(acc, a4, 64);
    v128.store(acc, a5, 80);
    v128.store(acc, a6, 96);
    v128.store(acc, a7, 112);
    applyEstimates(w, j0, end, group << 4, 16, acc, scale);
  }
}

// w[j − j0] ← f32(w − scale·estimate[j − first]) for the elements of [first, first + count) inside [j0, end).
@inline
function applyEstimates(w: usize, j0: u32, end: u32, first: u32, count: u32, estimates: usize, scale: f64): void {
  const from = max(first, j0);
  const to = min(first + count, end);
  for (let j = from; j < to; j++) {
    const p = w + (<usize>(j - j0) << 2);
    store<f32>(p, <f32>(<f64>load<f32>(p) - scale * load<f64>(estimates + (<usize>(j - first) << 3))));
  }
}

/**
 * Adds Δ·v_k lane sums for k ∈ [k0, k1) over the n elements (a multiple of 16, zero padded) starting at block
 * element j0 (a multiple of 16) into acc: 4 f64 per basis, lane l holding j ≡ l (mod 4).
 */
export function gaussianProject(
  delta: usize, n: u32, j0: u32, acc: usize, kBegin: i32, kEnd: i32, key0: i32, key1: i32, block: i32,
): void {
  setKey(key0, key1);
  for (let k = kBegin; k < kEnd; k++) {
    const slot = acc + (<usize>(k - kBegin) << 5);
    let s01 = v128.load(slot);
    let s23 = v128.load(slot, 16);
    for (let i: u32 = 0; i < n; i += 16) {
      gaussian16((j0 + i) >> 4, k, block);
      const d = delta + (<usize>i << 2);
      for (let m = 0; m < 4; m++) {
        const v = v128.load(SCRATCH + 64 + (<usize>m << 4));
        const x = v128.load(d + (<usize>m << 4));
        s01 = f64x2.add(s01, f64x2.mul(f64x2.promote_low_f32x4(x), f64x2.promote_low_f32x4(v)));
        s23 = f64x2.add(
          s23,
          f64x2.mul(
            f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3)),
            f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)),
          ),
        );
      }
    }
    v128.store(slot, s01);
    v128.store(slot, s23, 16);
  }
}

// ---- Rademacher: sign tables, 8 bases per random byte ----

/** T_g[m] = Σ_{i<8} s_i(m)·γ_{8g+i} (i ascending, bases ≥ kb skipped) for all groups, 256 f64 per group. */
export function rademacherTables(gamma: usize, kb: i32, tables: usize): void {
  const groups = (kb + 7) >> 3;
  for (let g = 0; g < groups; g++) {
    const count = min(8, kb - (g << 3));
    for (let m = 0; m < 256; m++) {
      let t: f64 = 0;
      for (let i = 0; i < count; i++) {
        const c = <f64>load<f32>(gamma + (<usize>((g << 3) + i) << 2));
        t += (m >> i) & 1 ? -c : c;
      }
      store<f64>(tables + (<usize>((g << 8) + m) << 3), t);
    }
  }
}

// Sign bytes of elements j..j+3 for bases 128·kgroup … +127, at SCRATCH (lane i's byte q at 16·(q>>2) + 4i + (q&3)).
@inline
function signBytes4(j: u32, kgroup: i32, block: i32): void {
  philox4(i32x4(j, j + 1, j + 2, j + 3), i32x4.splat(kgroup), i32x4.splat(block), i32x4.splat(TAG_RADEMACHER));
}

@inline
function signByte(lane: u32, q: i32): i32 {
  return load<u8>(SCRATCH + (<usize>(q >> 2) << 4) + (<usize>lane << 2) + <usize>(q & 3));
}

/** w[i] ← f32(w[i] − scale·Σ_g T_g[byte_g(j0+i)]) for i < n. */
export function rademacherReconstruct(
  w: usize, n: u32, j0: u32, tables: usize, kb: i32, key0: i32, key1: i32, block: i32, scale: f64,
): void {
  setKey(key0, key1);
  const groups = (kb + 7) >> 3;
  const acc = SCRATCH + 128;
  for (let i: u32 = 0; i < n; i += 4) {
    store<f64>(acc, 0);
    store<f64>(acc, 0, 8);
    store<f64>(acc, 0, 16);
    store<f64>(acc, 0, 24);
    for (let kgroup = 0; kgroup << 4 < groups; kgroup++) {
      signBytes4(j0 + i, kgroup, block);
      const qEnd = min(16, groups - (kgroup << 4));
      for (let lane: u32 = 0; lane < 4; lane++) {
        const slot = acc + (<usize>lane << 3);
        let sum = load<f64>(slot);
        for (let q = 0; q < qEnd; q++) {
          sum += load<f64>(tables + (<usize>((((kgroup << 4) + q) << 8) + signByte(lane, q)) << 3));
        }
        store<f64>(slot, sum);
      }
    }
    applyEstimates(w, j0, j0 + n, j0 + i, 4, acc, scale);
  }
}

/** Adds Δ_j into histograms H_g[byte_g(j)] for groups [gBegin, gEnd), j = j0 … j0+n−1 ascending. */
export function rademacherHistograms(
  delta: usize, n: u32, j0: u32, hist: usize, gBegin: i32, gEnd: i32, key0: i32, key1: i32, block: i32,
): void {
  setKey(key0, key1);
  for (let i: u32 = 0; i < n; i += 4) {
    const lanes = min<u32>(4, n - i);
    for (let kgroup = gBegin >> 4; kgroup << 4 < gEnd; kgroup++) {
      signBytes4(j0 + i, kgroup, block);
      const qBegin = max(0, gBegin - (kgroup << 4));
      const qEnd = min(16, gEnd - (kgroup << 4));
      for (let lane: u32 = 0; lane < lanes; lane++) {
        const d = <f64>load<f32>(delta + (<usize>(i + lane) << 2));
        for (let q = qBegin; q < qEnd; q++) {
          const p = hist + (<usize>((((kgroup << 4) + q - gBegin) << 8) + signByte(lane, q)) << 3);
          store<f64>(p, load<f64>(p) + d);
        }
      }
    }
  }
}

/** γ_{8g+i} = f32(Σ_m s_i(m)·H_g[m] / kb) for groups [gBegin, gEnd), written at gamma (relative to 8·gBegin). */
export function rademacherFinish(hist: usize, gBegin: i32, gEnd: i32, kb: i32, gamma: usize): void {
  for (let g = gBegin; g < gEnd; g++) {
    const h = hist + (<usize>(g - gBegin) << 11);
    for (let i = 0; i < min(8, kb - (g << 3)); i++) {
      let sum: f64 = 0;
      for (let m = 0; m < 256; m++) {
        const x = load<f64>(h + (<usize>m << 3));
        sum += (m >> i) & 1 ? -x : x;
      }
      store<f32>(gamma + (<usize>((g - gBegin) * 8 + i) << 2), <f32>(sum / <f64>kb));
    }
  }
}

// ---- Count sketch ----

// Bucket/sign words of the 16 elements of group G at SCRATCH (element order, as philox.ts lays out).
@inline
function sketch16(group: u32, block: i32): void {
  philox4(slotCounters(group), i32x4.splat(0), i32x4.splat(block), i32x4.splat(TAG_SKETCH));
}

@inline
function bucketOf(u: u32, kb: i32): usize {
  return <usize>(((<u64>(u >>> 1)) * <u64>kb) >> 31);
}

// f32(w − scale·x) on 4 lanes, computed in f64 exactly as applyEstimates does one element at a time.
@inline
function subtractScaled4(w: v128, x: v128, scale: v128): v128 {
  const low = f64x2.sub(f64x2.promote_low_f32x4(w), f64x2.mul(scale, f64x2.promote_low_f32x4(x)));
  const high = f64x2.sub(
    f64x2.promote_low_f32x4(i32x4.shuffle(w, w, 2, 3, 2, 3)),
    f64x2.mul(scale, f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3))),
  );
  return i32x4.shuffle(f32x4.demote_f64x2_zero(low), f32x4.demote_f64x2_zero(high), 0, 1, 4, 5);
}

/** w[i] ← f32(w[i] − scale·σ_j·γ_{h_j}) for i < n, j = j0 + i. */
export function sketchReconstruct(
  w: usize, n: u32, j0: u32, gamma: usize, kb: i32, key0: i32, key1: i32, block: i32, scale: f64,
): void {
  setKey(key0, key1);
  const end = j0 + n;
  const estimates = SCRATCH + 128;
  const buckets = i32x4.splat(kb);
  const scales = f64x2.splat(scale);
  for (let group = j0 >> 4; group <= (end - 1) >> 4; group++) {
    sketch16(group, block);
    const first = group << 4;
    if (first >= j0 && first + 16 <= end) {
      // Whole group: 4 lanes at a time. σ·γ is γ with its sign bit flipped when bit 0 of u is set.
      for (let m: u32 = 0; m < 4; m++) {
        const u = v128.load(SCRATCH + (<usize>m << 4));
        const half = i32x4.shr_u(u, 1);
        const low = i64x2.shr_u(i64x2.extmul_low_i32x4_u(half, buckets), 31);
        const high = i64x2.shr_u(i64x2.extmul_high_i32x4_u(half, buckets), 31);
        const h = i32x4.shuffle(low, high, 0, 2, 4, 6);
        let g = f32x4.splat(load<f32>(gamma + (<usize>i32x4.extract_lane(h, 0) << 2)));
        g = f32x4.replace_lane(g, 1, load<f32>(gamma + (<usize>i32x4.extract_lane(h, 1) << 2)));
        g = f32x4.replace_lane(g, 2, load<f32>(gamma + (<usize>i32x4.extract_lane(h, 2) << 2)));
        g = f32x4.replace_lane(g, 3, load<f32>(gamma + (<usize>i32x4.extract_lane(h, 3) << 2)));
        const signed = v128.xor(g, i32x4.shl(u, 31));
        const p = w + (<usize>(first + (m << 2) - j0) << 2);
        v128.store(p, subtractScaled4(v128.load(p), signed, scales));
      }
      continue;
    }
    for (let e: u32 = 0; e < 16; e++) {
      const u = load<u32>(SCRATCH + (<usize>e << 2));
      const c = <f64>load<f32>(gamma + (bucketOf(u, kb) << 2));
      store<f64>(estimates + (<usize>e << 3), u & 1 ? -c : c);
    }
    applyEstimates(w, j0, end, first, 16, estimates, scale);
  }
}

/** acc[h_j] += σ_j·Δ_j for j = j0 … j0+n−1 ascending (f64 accumulators, one per bucket). */
export function sketchProject(delta: usize, n: u32, j0: u32, acc: usize, kb: i32, key0: i32, key1: i32, block: i32): void {
  setKey(key0, key1);
  const end = j0 + n;
  for (let group = j0 >> 4; group <= (end - 1) >> 4; group++) {
    sketch16(group, block);
    const first = group << 4;
    for (let j = max(first, j0); j < min(first + 16, end); j++) {
      const u = load<u32>(SCRATCH + (<usize>(j - first) << 2));
      const d = <f64>load<f32>(delta + (<usize>(j - j0) << 2));
      const p = acc + (bucketOf(u, kb) << 3);
      store<f64>(p, load<f64>(p) + (u & 1 ? -d : d));
    }
  }
}

/**
 * Exact conversions between f32 and the two 16-bit float formats found in checkpoints.
 *
 * f16 (IEEE binary16): 1 sign, 5 exponent (bias 15), 10 mantissa bits.
 * bf16 (bfloat16): the top 16 bits of an f32: 1 sign, 8 exponent, 7 mantissa bits.
 *
 * Widening (16 → 32) is exact. Narrowing (32 → 16) rounds to nearest, ties to even, as IEEE-754 requires;
 * overflow goes to ±Infinity, NaN stays NaN (keeping the sign and top payload bits), and values below the
 * smallest subnormal round to ±0. Inputs are first taken as f32 (`Math.fround`): narrowing a double
 * directly could differ from narrowing the f32 a Float32Array holds, and f32 is what we store.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0] as number;
}

function bitsF32(bits: number): number {
  u32[0] = bits;
  return f32[0] as number;
}

/** Bits of the f16 nearest to the f32 value of `x` (ties to even). */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    if (mantissa === 0) return sign | 0x7c00;
    const payload = mantissa >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload); // an all-zero payload would read as Infinity
  }
  const unbiased = exponent - 127;
  if (unbiased > 15) return sign | 0x7c00;
  if (unbiased >= -14) {
    // Normal in f16. A carry out of the mantissa correctly bumps the exponent (and 65520+ becomes Infinity).
    const truncated = ((unbiased + 15) << 10) | (mantissa >>> 13);
    return sign | roundHalfEven(truncated, mantissa & 0x1fff, 0x1000);
  }
  if (exponent === 0) return sign; // f32 subnormals are far below half the smallest f16 subnormal
  // Subnormal in f16: value = m16 × 2^-24, and the f32 value is (1.mantissa) × 2^unbiased.
  const significand = mantissa | 0x800000;
  const shift = -unbiased - 1; // 14 (just below the normal range) .. larger for tinier values
  if (shift > 24) return sign;
  const truncated = significand >>> shift;
  const remainder = significand & ((1 << shift) - 1);
  return sign | roundHalfEven(truncated, remainder, 1 << (shift - 1));
}

function roundHalfEven(truncated: number, remainder: number, half: number): number {
  if (remainder > half || (remainder === half && (truncated & 1) === 1)) return truncated + 1;
  return truncated;
}

/** The f32 value of f16 bits (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) {
    if (mantissa === 0) return sign * Number.POSITIVE_INFINITY;
    return bitsF32(((h & 0x8000) << 16) | 0x7f800000 | (mantissa << 13)); // keep the payload
  }
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

/** Bits of the bf16 nearest to the f32 value of `x` (ties to even). */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
    const truncated = bits >>> 16;
    return (truncated & 0x7f) === 0 ? truncated | 0x40 : truncated; // an all-zero payload would read as Infinity
  }
  return roundHalfEven(bits >>> 16, bits & 0xffff, 0x8000) & 0xffff;
}

/** The f32 value of bf16 bits (exact). */
export function bf16BitsToF32(b: number): number {
  return bitsF32((b & 0xffff) << 16);
}

let f16Table: Float32Array | undefined;

/** Widens little-endian f16 values into `out` (a table lookup: 256 KiB built once). */
export function decodeF16(bytes: Uint8Array, out: Float32Array): void {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  const table = f16Table;
  for (let i = 0; i < out.length; i++) {
    out[i] = table[(bytes[2 * i] as number) | ((bytes[2 * i + 1] as number) << 8)] as number;
  }
}

/** Widens little-endian bf16 values into `out`. */
export function decodeBf16(bytes: Uint8Array, out: Float32Array): void {
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) {
    outBits[i] = ((bytes[2 * i] as number) << 16) | ((bytes[2 * i + 1] as number) << 24);
  }
}

/** Narrows `values` to little-endian 16-bit floats in `out` (2 bytes per value). */
export function encodeHalf(values: Float32Array, format: "F16" | "BF16", out: Uint8Array): void {
  const narrow = format === "F16" ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < values.length; i++) {
    const h = narrow(values[i] as number);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
}

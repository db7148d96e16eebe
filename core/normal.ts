/**
 * Standard normal samples from Philox words, bit-identical on every IEEE-754 machine.
 *
 * Box–Muller on float32 arithmetic that uses only + − × ÷ √ and integer operations: the logarithm and the
 * sine/cosine are our own polynomials, because Math.log/Math.cos differ between engines. Every float operation
 * below is rounded to float32 (Math.fround), which is exactly what the WebAssembly kernel's f32 instructions do:
 * an f32 operation done in f64 and then rounded gives the correctly rounded f32 result for + − × ÷ √.
 * The AssemblyScript kernel (core/kernels/kernels.ts) implements the same steps on 4 lanes; tests compare bytes.
 *
 * From words (a, b):  u1 = (⌊a/2^8⌋ + 1)·2^-24 ∈ (0, 1],  n = ⌊b/2^8⌋ (the angle in 2^-24 turns),
 *   r = √(−2 ln u1),  θ = 2π·n·2^-24,  outputs (r cos θ, r sin θ).
 */

const f = Math.fround;

const SQRT2 = f(Math.SQRT2);
const LN2_HI = f(0.693145751953125); // ln 2 with its low bits cleared: e·LN2_HI is exact for |e| < 2^12
const LN2_LO = f(1.4286067653302226e-6);
const HALF_PI = f(Math.PI / 2);

// atanh series coefficients 2/(2i+1): ln m = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.1716 after the √2 fold.
const L1 = f(2);
const L3 = f(2 / 3);
const L5 = f(2 / 5);
const L7 = f(2 / 7);
const L9 = f(2 / 9);

// Taylor coefficients of sin and cos on [−π/4, π/4]; the first omitted terms are below 2^-28.
const S3 = f(-1 / 6);
const S5 = f(1 / 120);
const S7 = f(-1 / 5040);
const S9 = f(1 / 362880);
const C2 = f(-1 / 2);
const C4 = f(1 / 24);
const C6 = f(-1 / 720);
const C8 = f(1 / 40320);
const C10 = f(-1 / 3628800);

/** ln(n · 2^-24) for an integer 1 ≤ n ≤ 2^24, in float32 arithmetic. */
export function logOfUnit24(n: number): number {
  let e = 31 - Math.clz32(n); // n = m·2^e with m ∈ [1, 2)
  let m = f(n / 2 ** e);
  if (m > SQRT2) {
    m = f(m * 0.5);
    e += 1;
  }
  const s = f(f(m - 1) / f(m + 1));
  const s2 = f(s * s);
  const poly = f(L1 + f(s2 * f(L3 + f(s2 * f(L5 + f(s2 * f(L7 + f(s2 * L9))))))));
  const lnM = f(s * poly);
  const exponent = e - 24;
  return f(f(exponent * LN2_HI) + f(f(exponent * LN2_LO) + lnM));
}

/** [cos θ, sin θ] for θ = 2π·n·2^-24, integer 0 ≤ n < 2^24, in float32 arithmetic. */
export function cosSinOfTurn24(n: number): [number, number] {
  // Nearest quarter turn q (ties up, decided on integers so no float rounding mode matters), residual x.
  const q = (n + (1 << 21)) >>> 22;
  const x = f(f((n - q * (1 << 22)) / (1 << 22)) * HALF_PI); // x ∈ [−π/4, π/4)
  const x2 = f(x * x);
  const sinX = f(x + f(x * f(x2 * f(S3 + f(x2 * f(S5 + f(x2 * f(S7 + f(x2 * S9)))))))));
  const cosX = f(1 + f(x2 * f(C2 + f(x2 * f(C4 + f(x2 * f(C6 + f(x2 * f(C8 + f(x2 * C10))))))))));
  switch (q & 3) {
    case 0:
      return [cosX, sinX];
    case 1:
      return [-sinX, cosX];
    case 2:
      return [-cosX, -sinX];
    default:
      return [sinX, -cosX];
  }
}

/** The Box–Muller pair [r·cos θ, r·sin θ] of two Philox words. */
export function boxMuller(wordA: number, wordB: number): [number, number] {
  const lnU = logOfUnit24((wordA >>> 8) + 1);
  const r = f(Math.sqrt(f(-2 * lnU)));
  const [c, s] = cosSinOfTurn24(wordB >>> 8);
  return [f(r * c), f(r * s)];
}

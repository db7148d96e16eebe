import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bf16BitsToF32,
  decodeBf16,
  decodeF16,
  encodeHalf,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from "../../core/formats/half.ts";

const f32Arb = fc.float({ noDefaultInfinity: false, noNaN: true });

/** The correctly rounded 16-bit value, found by comparing exact distances to the two neighbours. */
function nearest(
  x: number,
  widen: (bits: number) => number,
  maxFiniteBits: number,
  overflow: number,
): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // Positive bit patterns are ordered like their values; `overflow` stands for the value just past the
  // largest finite one (what the exponent would be if it continued), so ties there round to Infinity.
  const value = (bits: number) => (bits > maxFiniteBits ? overflow : widen(bits));
  let lo = 0;
  let hi = maxFiniteBits + 1;
  if (a >= overflow) return sign | (maxFiniteBits + 1);
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (value(mid) <= a) lo = mid;
    else hi = mid;
  }
  const below = a - value(lo);
  const above = value(hi) - a;
  const pick = below < above || (below === above && (lo & 1) === 0) ? lo : hi;
  return sign | pick;
}

/**
 * NaNs must stay NaNs of the same sign; their payload bits need not survive, because a CPU may quiet a
 * signalling NaN when JavaScript widens an f32 to a double.
 */
function isNanBits(bits: number, exponentMask: number, mantissaMask: number): boolean {
  return (bits & exponentMask) === exponentMask && (bits & mantissaMask) !== 0;
}

const formats = [
  {
    name: "f16",
    widen: f16BitsToF32,
    narrow: f32ToF16Bits,
    exponent: 0x7c00,
    mantissa: 0x3ff,
    overflow: 65536,
  },
  {
    name: "bf16",
    widen: bf16BitsToF32,
    narrow: f32ToBf16Bits,
    exponent: 0x7f80,
    mantissa: 0x7f,
    overflow: 2 ** 128,
  },
];

describe.each(formats)("$name", ({ name, widen, narrow, exponent, mantissa, overflow }) => {
  it("widens and narrows every one of the 65536 bit patterns back to itself (NaN to a NaN)", () => {
    for (let h = 0; h < 65536; h++) {
      const back = narrow(widen(h));
      const same = isNanBits(h, exponent, mantissa)
        ? isNanBits(back, exponent, mantissa) && (back & 0x8000) === (h & 0x8000)
        : back === h;
      if (!same) throw new Error(`${name} 0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  it("rounds every exact midpoint between neighbours to the even one (Infinity past the largest)", () => {
    const value = (bits: number) => (bits === exponent ? overflow : widen(bits));
    for (let h = 0; h < exponent; h++) {
      const midpoint = (value(h) + value(h + 1)) / 2;
      const even = h % 2 === 0 ? h : h + 1;
      if (narrow(midpoint) !== even || narrow(-midpoint) !== (even | 0x8000)) {
        throw new Error(`${name} midpoint ${midpoint} rounded to 0x${narrow(midpoint).toString(16)}`);
      }
    }
  });

  it("narrows any f32 to the correctly rounded value", () => {
    fc.assert(
      fc.property(f32Arb, (x) => {
        expect(narrow(x)).toBe(nearest(x, widen, exponent - 1, overflow));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe("f16", () => {
  it("knows its landmarks", () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x0400)).toBe(2 ** -14);
    expect(f16BitsToF32(0xfc00)).toBe(Number.NEGATIVE_INFINITY);
    expect(f16BitsToF32(0x7e00)).toBeNaN();
    expect(f32ToF16Bits(65519)).toBe(0x7bff); // just under half an ulp above the max
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // the tie rounds to even, which is Infinity
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal: even is 0
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(2); // tie between 1 and 2 subnormal ulps: even is 2
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(Number.NaN) & 0x7e00).toBe(0x7e00);
  });

  it("narrows values near f16's range edges correctly", () => {
    const edges = fc.oneof(
      fc.double({ min: -70000, max: 70000, noNaN: true }),
      fc.double({ min: -1e-4, max: 1e-4, noNaN: true }),
    );
    fc.assert(
      fc.property(edges, (d) => {
        const x = Math.fround(d);
        expect(f32ToF16Bits(x)).toBe(nearest(x, f16BitsToF32, 0x7bff, 65536));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe("bf16", () => {
  it("keeps NaN a NaN even when only low payload bits are set", () => {
    const nan = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0] as number;
    expect(bf16BitsToF32(f32ToBf16Bits(nan))).toBeNaN();
  });
});

describe("bulk conversion", () => {
  it("encodes then decodes arrays little-endian, exact for representable values", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 64 }), (bits) => {
        const f16Values = Float32Array.from(bits.filter((b) => (b & 0x7c00) !== 0x7c00).map(f16BitsToF32));
        const bytes = new Uint8Array(f16Values.length * 2);
        encodeHalf(f16Values, "F16", bytes);
        const back = new Float32Array(f16Values.length);
        decodeF16(bytes, back);
        expect(back).toEqual(f16Values);

        const bf16Values = Float32Array.from(bits.filter((b) => (b & 0x7f80) !== 0x7f80).map(bf16BitsToF32));
        const bfBytes = new Uint8Array(bf16Values.length * 2);
        encodeHalf(bf16Values, "BF16", bfBytes);
        const bfBack = new Float32Array(bf16Values.length);
        decodeBf16(bfBytes, bfBack);
        expect(bfBack).toEqual(bf16Values);
      }),
    );
    const bytes = new Uint8Array(2);
    encodeHalf(Float32Array.of(1), "F16", bytes);
    expect([...bytes]).toEqual([0x00, 0x3c]);
  });
});

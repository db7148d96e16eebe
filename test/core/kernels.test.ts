import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileKernels, Kernels } from "../../core/kernels/runtime.mjs";
import {
  FAMILIES,
  type Family,
  gaussianEntry,
  referenceEstimate,
  referenceProject,
  referenceReconstruct,
  type StreamKey,
  sketchBucket,
} from "../../core/reference.ts";

// The WebAssembly kernels against the scalar specification, byte for byte, on random shapes and values.
const kernels = new Kernels(compileKernels());

const floatArray = (length: number) =>
  fc.float32Array({
    minLength: length,
    maxLength: length,
    noNaN: true,
    noDefaultInfinity: true,
    min: -8,
    max: 8,
  });

const blockCase = fc
  .record({ size: fc.integer({ min: 1, max: 70 }), kb: fc.integer({ min: 1, max: 40 }) })
  .chain(({ size, kb }) =>
    fc.record({
      size: fc.constant(size),
      kb: fc.constant(kb),
      key: fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })),
      block: fc.integer({ min: 0, max: 1000 }),
      delta: floatArray(size),
      gamma: floatArray(kb),
      weights: floatArray(size),
      sliceStart: fc.integer({ min: 0, max: size - 1 }),
      scale: fc.double({ min: -2, max: 2, noNaN: true }),
    }),
  );

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

describe.each(FAMILIES)("%s kernels", (family) => {
  it("project exactly as the reference does", () => {
    fc.assert(
      fc.property(blockCase, ({ kb, key, block, delta }) => {
        const stream: StreamKey = { key, block };
        const out = new Float32Array(kb);
        kernels.projectBlock(family, { key0: key[0], key1: key[1], block }, kb, delta, 0, kb, out);
        expect(bytes(out)).toBe(bytes(referenceProject(family, stream, kb, delta)));
      }),
      { numRuns: 60 },
    );
  });

  it("reconstruct any slice exactly as the reference does", () => {
    fc.assert(
      fc.property(blockCase, (c) => expectReconstructionLikeReference(family, c)),
      { numRuns: 60 },
    );
  });
});

type BlockCase = typeof blockCase extends fc.Arbitrary<infer T> ? T : never;

function expectReconstructionLikeReference(family: Family, c: BlockCase): void {
  const { key, block, gamma, weights, sliceStart, scale } = c;
  const expected = weights.slice(sliceStart);
  referenceReconstruct(family, { key, block }, gamma, expected, sliceStart, scale);
  const actual = weights.slice(sliceStart);
  kernels.reconstructBlock(family, { key0: key[0], key1: key[1], block }, gamma, actual, sliceStart, scale);
  expect(bytes(actual)).toBe(bytes(expected));
}

// Sparse coefficients (mostly +0 and −0, the shape of a FedKSeed step or round): zeros are skipped, not summed.
const sparseGamma = (kb: number) =>
  fc
    .array(
      fc.oneof(
        { arbitrary: fc.constantFrom(0, -0), weight: 4 },
        { arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true, min: -8, max: 8 }), weight: 1 },
      ),
      { minLength: kb, maxLength: kb },
    )
    .map((values) => Float32Array.from(values));
const sparseCase = blockCase.chain((c) => sparseGamma(c.kb).map((gamma) => ({ ...c, gamma })));

describe("gaussian reconstruction with sparse coefficients", () => {
  it("matches the reference byte for byte", () => {
    fc.assert(
      fc.property(sparseCase, (c) => expectReconstructionLikeReference("gaussian", c)),
      { numRuns: 60 },
    );
  });

  it("skipping zero coefficients gives the same bits as summing every term", () => {
    // Includes sums that cancel to exactly 0 before a zero term (x + (−x) = +0, then +0 + (−0) = +0).
    const cancelling = fc
      .float({ noNaN: true, noDefaultInfinity: true, min: -8, max: 8 })
      .map((x) => Float32Array.of(x, -0, -x, -0, 0));
    const gammas = fc.oneof(
      sparseCase.map((c) => c.gamma),
      cancelling,
    );
    fc.assert(
      fc.property(gammas, fc.integer({ min: 0, max: 200 }), (gamma, j) => {
        const stream: StreamKey = { key: [7, 11], block: 3 };
        let full = 0;
        for (let k = 0; k < gamma.length; k++) full += (gamma[k] as number) * gaussianEntry(stream, k, j);
        expect(Object.is(referenceEstimate("gaussian", stream, gamma, j), full)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe("the reference's sketch bucket", () => {
  it("is exact where a double product would round (k_b > 2^22)", () => {
    // (u >>> 1)·k_b = 92,621,235,192,621,351 > 2^53; in doubles the bucket came out one higher.
    expect(sketchBucket(926_212_351 * 2, 100_000_001)).toBe(43_130_123);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 2 ** 22 }), (u, kb) => {
        expect(sketchBucket(u, kb)).toBe(Math.floor(((u >>> 1) * kb) / 2 ** 31));
      }),
    );
  });
});

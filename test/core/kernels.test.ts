import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileKernels, Kernels } from "../../core/kernels/runtime.mjs";
import { FAMILIES, referenceProject, referenceReconstruct, type StreamKey } from "../../core/reference.ts";

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
      fc.property(blockCase, ({ key, block, gamma, weights, sliceStart, scale }) => {
        const expected = weights.slice(sliceStart);
        referenceReconstruct(family, { key, block }, gamma, expected, sliceStart, scale);
        const actual = weights.slice(sliceStart);
        kernels.reconstructBlock(
          family,
          { key0: key[0], key1: key[1], block },
          gamma,
          actual,
          sliceStart,
          scale,
        );
        expect(bytes(actual)).toBe(bytes(expected));
      }),
      { numRuns: 60 },
    );
  });
});

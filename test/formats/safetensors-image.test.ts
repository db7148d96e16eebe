import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SafetensorsHeaderError, SafetensorsLayoutError } from "../../core/formats/errors.ts";
import { encodeSafetensors, type NamedTensor } from "../../core/formats/safetensors.ts";
import { type LazyTensor, safetensorsImage } from "../../core/formats/safetensors-image.ts";
import { tensorsArb, toNamed } from "./arbitraries.ts";

/** The same tensors as views into one shared buffer at an odd element offset, as a flat weight vector holds them. */
function packed(tensors: NamedTensor[]): NamedTensor[] {
  const flat = new Float32Array(3 + tensors.reduce((n, t) => n + t.data.length, 0));
  let at = 3;
  return tensors.map((t) => {
    const data = flat.subarray(at, at + t.data.length);
    data.set(t.data);
    at += t.data.length;
    return { ...t, data };
  });
}

/** The tensor as a reader hands it out, refusing any element outside it as SafetensorsReader.readRange does. */
const lazy = ({ name, shape, data }: NamedTensor): LazyTensor => ({
  name,
  shape,
  read: async (start, count) => {
    if (start < 0 || count < 0 || start + count > data.length)
      throw new Error(`read [${start}, ${start + count}) outside ${data.length}`);
    return data.slice(start, start + count);
  },
});

const imageCase = fc
  .record({
    list: tensorsArb,
    metadata: fc.option(fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }), { nil: undefined }),
    views: fc.boolean(),
    // Which tensors come from a reader rather than memory: bit i % 31 of the mask.
    lazyMask: fc.nat(),
    // A range as two fractions of the file, so every range of every file is reachable.
    from: fc.double({ min: 0, max: 1, noNaN: true }),
    to: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ list, metadata, views, lazyMask, from, to }) => {
    const named = views ? packed(toNamed(list)) : toNamed(list);
    const sources = named.map((t, i) => ((lazyMask >> (i % 31)) & 1 ? lazy(t) : t));
    return { tensors: named, sources, options: metadata === undefined ? {} : { metadata }, from, to };
  });

describe("safetensorsImage", () => {
  it("reads any byte range exactly as encodeSafetensors writes it, from memory or from readers", async () => {
    await fc.assert(
      fc.asyncProperty(imageCase, async ({ tensors, sources, options, from, to }) => {
        const file = encodeSafetensors(tensors, options);
        const image = safetensorsImage(sources, options);
        expect(image.byteLength).toBe(file.byteLength);
        const [a, b] = [Math.floor(from * file.length), Math.floor(to * file.length)].sort((x, y) => x - y);
        const into = new Uint8Array((b as number) - (a as number));
        await image.readInto(a as number, into);
        expect(Buffer.from(into).equals(Buffer.from(file.subarray(a, b)))).toBe(true);
      }),
    );
  });

  it("reads the whole file in parts of any size, as a multipart upload does", async () => {
    await fc.assert(
      fc.asyncProperty(
        imageCase,
        fc.integer({ min: 1, max: 64 }),
        async ({ tensors, sources, options }, partBytes) => {
          const image = safetensorsImage(sources, options);
          const whole = new Uint8Array(image.byteLength);
          for (let at = 0; at < image.byteLength; at += partBytes) {
            await image.readInto(at, whole.subarray(at, Math.min(at + partBytes, image.byteLength)));
          }
          expect(Buffer.from(whole).equals(Buffer.from(encodeSafetensors(tensors, options)))).toBe(true);
        },
      ),
    );
  });

  it("refuses a tensor whose data does not fill its shape, as encodeSafetensors does", () => {
    const bad = [{ name: "w", shape: [2, 3], data: new Float32Array(5) }];
    expect(() => encodeSafetensors(bad)).toThrow(SafetensorsLayoutError);
    expect(() => safetensorsImage(bad)).toThrow(/tensor "w" shape \[2,3\] needs 6 values, got 5/);
    const twice = [
      { name: "w", shape: [1], data: new Float32Array(1) },
      { name: "w", shape: [1], data: new Float32Array(1) },
    ];
    expect(() => safetensorsImage(twice)).toThrow(SafetensorsHeaderError);
  });

  it("refuses ranges outside the file, saying where the file ends", async () => {
    const image = safetensorsImage([{ name: "w", shape: [4], data: new Float32Array(4) }]);
    const size = image.byteLength;
    await expect(image.readInto(size - 3, new Uint8Array(4))).rejects.toThrow(
      new RegExp(`bytes \\[${size - 3}, ${size + 1}\\) are outside the ${size}-byte safetensors file`),
    );
    await expect(image.readInto(-1, new Uint8Array(1))).rejects.toThrow(SafetensorsLayoutError);
    await expect(image.readInto(0.5, new Uint8Array(1))).rejects.toThrow(SafetensorsLayoutError);
    await expect(image.readInto(size + 1, new Uint8Array(0))).rejects.toThrow(SafetensorsLayoutError);
    await image.readInto(size, new Uint8Array(0)); // the empty range at the end is inside
  });
});

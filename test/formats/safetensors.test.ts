import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FormatError,
  MissingTensorError,
  SafetensorsHeaderError,
  SafetensorsLayoutError,
  UnsupportedDtypeError,
} from "../../core/formats/errors.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../core/formats/half.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  readSafetensors,
  SafetensorsReader,
  SafetensorsWriter,
  writeSafetensors,
} from "../../core/formats/safetensors.ts";
import { tensorsArb, toNamed } from "./arbitraries.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferret-safetensors-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file with a hand-written header (as a JSON string) followed by `data`. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Bitwise equality; vitest's deep equality is far too slow for million-element arrays. */
function expectSameBits(actual: Float32Array | undefined, expected: Float32Array): void {
  expect(actual?.length).toBe(expected.length);
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  expect(bytes(actual as Float32Array).equals(bytes(expected))).toBe(true);
}

describe("safetensors round trips", () => {
  it("export then import gives identical f32 tensors, names, shapes and order", () => {
    fc.assert(
      fc.property(tensorsArb, (list) => {
        const tensors = toNamed(list);
        const bytes = encodeSafetensors(tensors, { metadata: { format: "pt" } });
        const back = decodeSafetensors(bytes);
        expect(back.metadata).toEqual({ format: "pt" });
        expect(back.tensors.map((t) => [t.name, t.shape])).toEqual(tensors.map((t) => [t.name, t.shape]));
        back.tensors.forEach((t, i) => {
          expectSameBits(t.data, (tensors[i] as NamedTensor).data);
        });
      }),
    );
  });

  it("keeps header order for integer-like names and empty tensors, whose offsets tie", () => {
    const empty = (name: string) => ({ name, shape: [0], data: new Float32Array(0) });
    const tensors = [empty("b"), empty("10"), empty("a"), empty("2")];
    expect(decodeSafetensors(encodeSafetensors(tensors)).tensors.map((t) => t.name)).toEqual([
      "b",
      "10",
      "a",
      "2",
    ]);
  });

  it("stores f16 and bf16 as the correctly rounded values", () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true }), { minLength: 1, maxLength: 20 }), (values) => {
        const data = Float32Array.from(values);
        const tensor = { name: "w", shape: [data.length], data };
        const f16 = decodeSafetensors(encodeSafetensors([tensor], { dtype: "F16" })).tensors[0]?.data;
        const bf16 = decodeSafetensors(encodeSafetensors([tensor], { dtype: "BF16" })).tensors[0]?.data;
        expect(f16).toEqual(data.map((x) => f16BitsToF32(f32ToF16Bits(x))));
        expect(bf16).toEqual(data.map((x) => bf16BitsToF32(f32ToBf16Bits(x))));
      }),
    );
  });

  it("reads a hand-built file holding F16 and BF16 tensors", () => {
    const header =
      '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' +
      '"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]}}';
    const file = rawFile(header, Uint8Array.of(0x00, 0x3c, 0x00, 0xc0, 0x49, 0x40)); // 1, -2 | 3.140625
    const { tensors } = decodeSafetensors(file);
    expect(tensors).toEqual([
      { name: "a", shape: [2], data: Float32Array.of(1, -2) },
      { name: "b", shape: [1, 1], data: Float32Array.of(3.140625) },
    ]);
  });

  it("pads the header so tensor data starts on an 8-byte boundary", () => {
    const bytes = encodeSafetensors([{ name: "x", shape: [3], data: Float32Array.of(1, 2, 3) }]);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    expect(bytes.length).toBe(8 + headerLength + 12);
  });
});

describe("safetensors files", () => {
  const big = new Float32Array(1_500_000).map((_, i) => (i % 1000) - 500.25); // more than one I/O chunk

  it("streams tensors to disk and reads them back one at a time or by element range", async () => {
    const path = join(dir, "model.safetensors");
    const tensors = [
      { name: "wte.weight", shape: [1500, 1000], data: big },
      { name: "ln_f.bias", shape: [4], data: Float32Array.of(0.5, -0, 3, 7) },
    ];
    await writeSafetensors(path, tensors, { metadata: { source: "test" } });
    const reader = await SafetensorsReader.open(path);
    try {
      expect(reader.tensors.map((t) => t.name)).toEqual(["wte.weight", "ln_f.bias"]);
      expect(reader.metadata).toEqual({ source: "test" });
      expect((await reader.readTensor("ln_f.bias")).data).toEqual(tensors[1]?.data);
      expect(await reader.readRange("wte.weight", 1_048_570, 10)).toEqual(big.subarray(1_048_570, 1_048_580));
      expectSameBits((await reader.readTensor("wte.weight")).data, big);
      expect(await reader.readBytes("ln_f.bias", 0, 4)).toEqual(new Uint8Array(Float32Array.of(0.5).buffer));
      await expect(reader.readTensor("lm_head.weight")).rejects.toThrow(MissingTensorError);
      await expect(reader.readRange("ln_f.bias", 2, 3)).rejects.toThrow(/elements \[2, 5\) are outside/);
    } finally {
      await reader.close();
    }
  });

  it("reads a bf16 file by range and as a whole", async () => {
    const path = join(dir, "half.safetensors");
    await writeSafetensors(path, [{ name: "h", shape: [big.length], data: big }], { dtype: "BF16" });
    const rounded = big.map((x) => bf16BitsToF32(f32ToBf16Bits(x)));
    const reader = await SafetensorsReader.open(path);
    try {
      expect(await reader.readRange("h", 1_048_575, 3)).toEqual(rounded.subarray(1_048_575, 1_048_578));
    } finally {
      await reader.close();
    }
    expectSameBits((await readSafetensors(path)).tensors[0]?.data, rounded);
  });

  it("leaves nothing behind when a writer is closed early or given the wrong size", async () => {
    const sub = await mkdtemp(join(dir, "partial-"));
    const path = join(sub, "out.safetensors");
    const writer = await SafetensorsWriter.create(path, [
      { name: "a", shape: [2] },
      { name: "b", shape: [3] },
    ]);
    await expect(writer.write(Float32Array.of(1, 2, 3))).rejects.toThrow(/needs 2 values, got 3/);
    await writer.write(Float32Array.of(1, 2));
    await expect(writer.close()).rejects.toThrow(/"b" was never written/);
    await expect(
      writeSafetensors(path, [{ name: "a", shape: [2, 2], data: new Float32Array(3) }]),
    ).rejects.toThrow(SafetensorsLayoutError);
    expect(await readdir(sub)).toEqual([]);
  });

  it("names the file in header errors", async () => {
    const path = join(dir, "short.safetensors");
    await writeFile(path, Uint8Array.of(1, 2, 3));
    await expect(SafetensorsReader.open(path)).rejects.toThrow(`${path}: file is 3 bytes`);
  });
});

describe("safetensors validation", () => {
  const f32 = (shape: number[], begin: number, end: number) =>
    JSON.stringify({ dtype: "F32", shape, data_offsets: [begin, end] });

  const cases: [string, Uint8Array, typeof FormatError, RegExp][] = [
    ["too short", Uint8Array.of(1, 0, 0), SafetensorsHeaderError, /8-byte header length/],
    [
      "header longer than the file",
      (() => {
        const b = rawFile("{}");
        b[0] = 200;
        return b;
      })(),
      SafetensorsHeaderError,
      /runs past the end/,
    ],
    [
      "oversized header",
      (() => {
        const b = rawFile("{}");
        new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true);
        return b;
      })(),
      SafetensorsHeaderError,
      /exceeds the \d+-byte limit/,
    ],
    ["not JSON", rawFile("{oops"), SafetensorsHeaderError, /not valid JSON/],
    ["a JSON array", rawFile("[1,2]"), SafetensorsHeaderError, /must be a JSON object/],
    [
      "invalid UTF-8",
      rawFile('{"\u00ff":1}').map((b) => (b === 0xc3 ? 0xff : b)),
      SafetensorsHeaderError,
      /UTF-8/,
    ],
    [
      "a duplicate name",
      rawFile(`{"w":${f32([1], 0, 4)}, "w" :${f32([1], 4, 8)}}`, new Uint8Array(8)),
      SafetensorsHeaderError,
      /names "w" twice/,
    ],
    [
      "an unknown dtype",
      rawFile('{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Uint8Array(16)),
      UnsupportedDtypeError,
      /dtype "F128", expected one of BOOL/,
    ],
    [
      "a size mismatch",
      rawFile(`{"w":${f32([2, 2], 0, 12)}}`, new Uint8Array(12)),
      SafetensorsLayoutError,
      /shape \[2,2\] of F32 needs 16 bytes, but data_offsets span 12/,
    ],
    [
      "a gap",
      rawFile(`{"a":${f32([1], 0, 4)},"b":${f32([1], 8, 12)}}`, new Uint8Array(12)),
      SafetensorsLayoutError,
      /begins at byte 8, expected 4/,
    ],
    [
      "an overlap",
      rawFile(`{"a":${f32([2], 0, 8)},"b":${f32([1], 4, 8)}}`, new Uint8Array(8)),
      SafetensorsLayoutError,
      /overlapping/,
    ],
    [
      "out of bounds",
      rawFile(`{"a":${f32([2], 0, 8)}}`, new Uint8Array(4)),
      SafetensorsLayoutError,
      /past the 4-byte data section/,
    ],
    [
      "trailing bytes",
      rawFile(`{"a":${f32([1], 0, 4)}}`, new Uint8Array(8)),
      SafetensorsLayoutError,
      /trailing bytes/,
    ],
    [
      "non-string metadata",
      rawFile('{"__metadata__":{"step":3}}'),
      SafetensorsHeaderError,
      /"__metadata__.step" must be a string, got number/,
    ],
    [
      "an extra entry key",
      rawFile('{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}', new Uint8Array(4)),
      SafetensorsHeaderError,
      /expected exactly \[data_offsets,dtype,shape\]/,
    ],
    [
      "a fractional dimension",
      rawFile(`{"a":${f32([1.5], 0, 6)}}`, new Uint8Array(6)),
      SafetensorsHeaderError,
      /shape must be an array of non-negative integers/,
    ],
    [
      "a non-float dtype loaded as weights",
      rawFile('{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', new Uint8Array(8)),
      UnsupportedDtypeError,
      /"i" is I64; only F32, F16 and BF16/,
    ],
  ];

  it.each(cases)("rejects %s with a typed error saying what was expected", (_, bytes, type, message) => {
    expect(() => decodeSafetensors(bytes)).toThrow(type);
    expect(() => decodeSafetensors(bytes)).toThrow(message);
  });

  it("answers any corruption of the header with a FormatError or a correct result, never a crash", () => {
    const valid = encodeSafetensors([
      { name: "a", shape: [2, 3], data: new Float32Array(6).fill(1) },
      { name: "b", shape: [2], data: Float32Array.of(2, 3) },
    ]);
    const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: headerEnd - 1 }),
        fc.integer({ min: 0, max: 255 }),
        (at, byte) => {
          const bytes = valid.slice();
          bytes[at] = byte;
          try {
            const { tensors } = decodeSafetensors(bytes);
            for (const t of tensors) expect(t.data.length).toBe(t.shape.reduce((x, y) => x * y, 1));
          } catch (error) {
            expect(error).toBeInstanceOf(FormatError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

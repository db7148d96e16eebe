// Checkpoint import reads only the header and the byte ranges it needs, so the header must be checked against the
// plan before any data is trusted: every tensor present, F32, the plan's shape, inside the file.
import { describe, expect, it } from "vitest";
import { encodeSafetensors } from "../../core/formats/safetensors.ts";
import { buildPlan } from "../../core/plan.ts";
import { BadRequest } from "../../functions/errors.ts";
import { headerFor, headerLength, locateTensors } from "../../functions/rounds/safetensors.ts";

const plan = buildPlan(
  [
    { name: "wte", shape: [4, 3] },
    { name: "ln_f", shape: [3] },
  ],
  { totalK: 4 },
);

function locate(file: Uint8Array) {
  const length = headerLength(file.subarray(0, 8), file.byteLength);
  return locateTensors(file.subarray(8, 8 + length), file.byteLength, plan);
}

const tensor = (name: string, shape: number[], start = 0) => ({
  name,
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => start + i),
});

describe("locating plan tensors in a safetensors file", () => {
  it("finds each tensor's bytes, in any file order", () => {
    const file = encodeSafetensors([tensor("ln_f", [3], 100), tensor("wte", [4, 3])]);
    const located = locate(file);
    expect(located.map((t) => [t.name, t.flatOffset, t.size])).toEqual([
      ["wte", 0, 12],
      ["ln_f", 12, 3],
    ]);
    const view = new DataView(file.buffer);
    expect(view.getFloat32(located[1]?.fileOffset ?? 0, true)).toBe(100);
  });

  it("writes a header the reader accepts for the plan's own layout", () => {
    const header = headerFor(plan);
    const data = new Uint8Array(plan.totalParams * 4);
    const file = new Uint8Array([...header, ...data]);
    expect(locate(file).map((t) => t.fileOffset)).toEqual([header.byteLength, header.byteLength + 48]);
  });

  it.each([
    ["a missing tensor", [tensor("wte", [4, 3])], /lacks tensor ln_f/],
    ["a wrong shape", [tensor("wte", [3, 4]), tensor("ln_f", [3])], /shape \[3,4\], plan says \[4,3\]/],
  ])("refuses %s", (_, tensors, message) => {
    expect(() => locate(encodeSafetensors(tensors))).toThrow(message);
  });

  it("refuses half precision", () => {
    const file = encodeSafetensors([tensor("wte", [4, 3]), tensor("ln_f", [3])], { dtype: "F16" });
    expect(() => locate(file)).toThrow(/F16; only F32/);
  });

  it("refuses a truncated file as a bad request", () => {
    const file = encodeSafetensors([tensor("wte", [4, 3]), tensor("ln_f", [3])]);
    const error = (() => {
      try {
        locate(file.subarray(0, file.byteLength - 4));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(BadRequest);
    expect((error as BadRequest).code).toBe("invalid_checkpoint");
  });
});

import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { collectGarbage, freeArrays } from "../../client/engine/freeing.ts";

describe("freeArrays", () => {
  it("empties each array and every other view of its buffer", () => {
    const outputs = [new Float32Array(1024).fill(1), new Float64Array(8)];
    const otherView = new Uint8Array((outputs[0] as Float32Array).buffer);
    freeArrays(outputs);
    expect(outputs.map((a) => a.length)).toEqual([0, 0]);
    expect(otherView.length).toBe(0);
  });

  it("refuses a part of a buffer, and frees none of the arrays it was given", () => {
    const whole = new Float32Array(16);
    const part = new Float32Array(16).subarray(4);
    expect(() => freeArrays([whole, part])).toThrow(/whole ArrayBuffer, got 48 of 64 bytes/);
    expect(whole.length).toBe(16);
    expect(part.length).toBe(12);
  });
});

describe("collectGarbage", () => {
  it("collects what nothing references any more, at once", async () => {
    let dropped: object | undefined = { graph: new Float32Array(16) };
    const ref = new WeakRef(dropped);
    dropped = undefined;
    await nextTurn(); // a WeakRef keeps its target alive until the current job ends
    collectGarbage();
    expect(ref.deref()).toBeUndefined();
  });
});

import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { collectDroppedOutputs } from "../../client/engine/garbage.ts";

describe("collectDroppedOutputs", () => {
  it("frees dropped output buffers at once when there are tens of MiB of them", async () => {
    let output: ArrayBuffer | undefined = new ArrayBuffer(64);
    const dropped = new WeakRef(output);
    output = undefined;
    await nextTurn(); // a WeakRef keeps its target alive until the current job ends
    collectDroppedOutputs(64 * 2 ** 20);
    expect(dropped.deref()).toBeUndefined();
  });
});

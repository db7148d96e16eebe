import { describe, expect, it } from "vitest";
import { EngineInputError } from "../../client/engine/build.ts";
import { TrainingSession } from "../../client/engine/session.ts";
import { modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { TINY_GPT2, TINY_LLAMA } from "./fixtures.ts";

const shape = { batchSize: 2, seqLen: 4 };
const batch = {
  inputIds: BigInt64Array.from([1n, 5n, 12n, 0n, 3n, 3n, 7n, 2n]),
  targets: BigInt64Array.from([5n, 12n, 0n, 9n, 3n, 7n, 2n, 11n]),
  lossMask: Float32Array.from([1, 1, 1, 0, 1, 1, 1, 1]),
};

describe.each([
  ["GPT-2", TINY_GPT2],
  ["LLaMA", TINY_LLAMA],
])("TrainingSession gradient outputs (%s)", (_, json) => {
  const config = parseModelConfig(json);
  const weights = initWeights(config, 4);

  it("row blocks (one row per block, uneven blocks) give the same bytes as whole-tensor outputs", async () => {
    const whole = await TrainingSession.create(config, shape);
    const expected = await whole.step(weights, batch);
    for (const maxOutputBytes of [1, 100]) {
      const split = await TrainingSession.create(config, { ...shape, maxOutputBytes });
      const got = await split.step(weights, batch);
      expect(got.loss).toBe(expected.loss);
      for (const { name } of modelTensors(config))
        expect(got.grads.get(name)).toEqual(expected.grads.get(name));
      await split.release();
    }
    await whole.release();
  });

  it("writes into the caller's arrays, step after step", async () => {
    const session = await TrainingSession.create(config, { ...shape, maxOutputBytes: 100 });
    const fresh = await session.step(weights, batch);
    const into = new Map(
      modelTensors(config).map((t) => [t.name, new Float32Array(t.shape.reduce((a, b) => a * b))]),
    );
    for (let i = 0; i < 2; i++) {
      const { grads } = await session.step(weights, batch, into);
      for (const [name, g] of grads) {
        expect(g).toBe(into.get(name));
        expect(g).toEqual(fresh.grads.get(name));
      }
    }
    await session.release();
  });

  it.each([
    ["an output head in blocks of one position", { headBlockBytes: 1 }],
    ["log-softmax composed of reductions (as on WebGPU)", { logSoftmax: "composed" as const }],
  ])("%s gives the fused whole head's loss and gradients (float64)", async (_, variant) => {
    const float64 = new Map(
      [...weights].map(([name, w]) => [name, { shape: w.shape, data: Float64Array.from(w.data) }]),
    );
    const batch64 = { ...batch, lossMask: Float64Array.from(batch.lossMask) };
    const options = { ...shape, floatType: "float64" as const };
    const whole = await TrainingSession.create(config, options);
    const other = await TrainingSession.create(config, { ...options, ...variant });
    const [a, b] = [await whole.step(float64, batch64), await other.step(float64, batch64)];
    expect(b.loss).toBeCloseTo(a.loss, 12);
    for (const [name, g] of a.grads) {
      const h = b.grads.get(name) as Float64Array;
      for (const [i, v] of g.entries()) {
        expect(Math.abs((h[i] as number) - v)).toBeLessThan(1e-12 * (1 + Math.abs(v)));
      }
    }
    await whole.release();
    await other.release();
  });

  it("rejects gradient arrays of the wrong length or float type", async () => {
    const session = await TrainingSession.create(config, shape);
    const into = new Map(
      modelTensors(config).map((t) => [t.name, new Float32Array(t.shape.reduce((a, b) => a * b))]),
    );
    const [first] = modelTensors(config);
    const name = first?.name as string;
    await expect(session.step(weights, batch, new Map(into).set(name, new Float32Array(3)))).rejects.toThrow(
      new RegExp(`gradient array for ${name.replaceAll(".", "\\.")} must be a float32 array of \\d+ values`),
    );
    const size = into.get(name)?.length as number;
    await expect(
      session.step(
        weights,
        batch,
        new Map<string, Float32Array | Float64Array>(into).set(name, new Float64Array(size)),
      ),
    ).rejects.toThrow(EngineInputError);
    await session.release();
  });
});

import { describe, expect, it } from "vitest";
import { EngineInputError } from "../../client/engine/build.ts";
import { OnnxGradientSource } from "../../client/engine/source.ts";
import { parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { trainLocal } from "../../client/train/loop.ts";
import { Sgd } from "../../client/train/optimizers.ts";
import type { ParamRecord } from "../../client/train/params.ts";
import { makeSchedule } from "../../client/train/schedule.ts";
import { TINY_GPT2 } from "./fixtures.ts";

const config = parseModelConfig(TINY_GPT2);
const record = (): ParamRecord =>
  Object.fromEntries([...initWeights(config, 4)].map(([name, w]) => [name, w.data]));
const batch = {
  batchSize: 1,
  seqLen: 3,
  inputIds: Int32Array.from([3, 7, 1]),
  targets: Int32Array.from([7, 1, 12]),
  lossMask: Float32Array.from([0, 1, 1]),
};

describe("OnnxGradientSource (the trainer's engine)", () => {
  it("pads a smaller batch without changing loss or gradients", async () => {
    const exact = new OnnxGradientSource(config, { batchSize: 1, seqLen: 3 });
    const padded = new OnnxGradientSource(config, { batchSize: 2, seqLen: 5 });
    const params = record();
    const a = await exact.lossAndGradients(params, batch);
    const b = await padded.lossAndGradients(params, batch);
    expect(b.loss).toBeCloseTo(a.loss, 5);
    for (const [name, g] of Object.entries(a.gradients)) {
      const other = b.gradients[name] as Float32Array;
      g.forEach((x, i) => {
        expect(Math.abs((other[i] as number) - x)).toBeLessThan(1e-5 + 1e-4 * Math.abs(x));
      });
    }
    expect(await padded.loss(params, batch)).toBeCloseTo(a.loss, 5);
    await expect(exact.loss(params, { ...batch, seqLen: 4 })).rejects.toThrow(EngineInputError);
    await exact.release();
    await padded.release();
  });

  it("drives trainLocal: SGD steps lower the loss on the batch", async () => {
    const source = new OnnxGradientSource(config, { batchSize: 1, seqLen: 3, threads: 1 });
    const params = record();
    const before = await source.loss(params, batch);
    const repeat = (function* () {
      for (;;) yield batch;
    })();
    await trainLocal(params, source, repeat, {
      steps: 20,
      optimizer: new Sgd(),
      schedule: makeSchedule({ kind: "constant", lr: 0.5 }),
    });
    expect(await source.loss(params, batch)).toBeLessThan(before / 4);
    await source.release();
  });
});

import { describe, expect, it } from "vitest";
import { type Batch, batches, epochBatches } from "../../client/data/batches.ts";
import { prepareSequences } from "../../client/data/sequences.ts";
import { ByteTokenizer } from "../../client/formats/tokenizer.ts";
import { evaluateLoss, type StepReport, trainLocal } from "../../client/train/loop.ts";
import { AdamW, Sgd } from "../../client/train/optimizers.ts";
import type { ParamRecord } from "../../client/train/params.ts";
import { makeSchedule } from "../../client/train/schedule.ts";
import { BigramModel } from "../support/bigram.ts";
import { mobyDickChapters } from "../support/moby-dick.ts";

const tokenizer = new ByteTokenizer();
const model = new BigramModel(tokenizer.vocabSize);
const chapters = mobyDickChapters();
const examples = (chapters[4]?.text ?? "").split("\n\n").map((text) => ({ text }));
const { sequences } = prepareSequences(examples, tokenizer, { seqLen: 32, mode: "pack", seed: 1 });
const held = prepareSequences(
  (chapters[5]?.text ?? "").split("\n\n").map((text) => ({ text })),
  tokenizer,
  { seqLen: 32, mode: "pack", seed: 1 },
).sequences;
const evalBatches = () => batches(held, { batchSize: 8, seed: 0 });

describe("the bigram test model", () => {
  it("has the gradient its loss implies (central finite differences)", async () => {
    const params = model.init();
    params.logits?.forEach((_, i, a) => {
      a[i] = Math.sin(i) * 0.5;
    });
    const batch = batches(sequences, { batchSize: 2, seed: 3 }).next().value as Batch;
    const { gradients } = await model.lossAndGradients(params, batch);
    const logits = params.logits as Float32Array;
    const probe = [batch.inputIds[0] as number, batch.inputIds[5] as number].map(
      (row) => row * tokenizer.vocabSize + (batch.targets[0] as number),
    );
    for (const i of probe) {
      const original = logits[i] as number;
      const h = 1e-2;
      logits[i] = original + h;
      const up = await model.loss(params, batch);
      logits[i] = original - h;
      const down = await model.loss(params, batch);
      logits[i] = original;
      expect(gradients.logits?.[i]).toBeCloseTo((up - down) / (2 * h), 3);
    }
  });
});

describe("local training", () => {
  it("lowers held-out loss with SGD (the paper's local optimizer) and reports every step", async () => {
    const params = model.init();
    const before = await evaluateLoss(params, model, evalBatches());
    expect(before).toBeCloseTo(Math.log(tokenizer.vocabSize), 5); // uniform predictions
    const seen: StepReport[] = [];
    const reports = await trainLocal(params, model, epochBatches(sequences, { batchSize: 8, seed: 2 }), {
      steps: 40,
      optimizer: new Sgd(),
      schedule: makeSchedule({ kind: "constant", lr: 50 }),
      clipNorm: 5,
      onStep: (r) => seen.push(r),
    });
    expect(seen).toEqual(reports);
    expect(reports.map((r) => r.step)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const after = await evaluateLoss(params, model, evalBatches());
    console.log("SGD", before, after, reports[0]?.loss, reports.at(-1)?.loss);
    // Bytes of English under a bigram model: well under the 5.55 nats of a uniform guess over 257.
    expect(after).toBeLessThan(3.5);
    expect(reports.at(-1)?.loss).toBeLessThan(reports[0]?.loss as number);
  });

  it("trains with AdamW under a warmup-cosine schedule", async () => {
    const params = model.init();
    const reports = await trainLocal(params, model, epochBatches(sequences, { batchSize: 8, seed: 2 }), {
      steps: 30,
      optimizer: new AdamW({ weightDecay: 0 }),
      schedule: makeSchedule({ kind: "cosine", peakLr: 0.5, warmupSteps: 5, totalSteps: 30 }),
    });
    expect(reports[2]?.lr).toBeCloseTo(0.3, 12);
    expect(await evaluateLoss(params, model, evalBatches())).toBeLessThan(3.5);
  });

  it("takes the same step from accumulated micro-batches as from one batch of all their rows", async () => {
    const rows = sequences.slice(0, 4);
    const run = async (batchSize: number, accumulation: number): Promise<ParamRecord> => {
      const params = model.init();
      await trainLocal(params, model, batches(rows, { batchSize, seed: 7 }), {
        steps: 1,
        accumulation,
        optimizer: new Sgd(),
        schedule: makeSchedule({ kind: "constant", lr: 1 }),
      });
      return params;
    };
    const whole = (await run(4, 1)).logits as Float32Array;
    const accumulated = (await run(1, 4)).logits as Float32Array;
    let worst = 0;
    whole.forEach((x, i) => {
      worst = Math.max(worst, Math.abs(x - (accumulated[i] as number)));
    });
    expect(worst).toBeLessThan(1e-6);
  });

  it("stops with a clear error when batches run out or gradients are not finite", async () => {
    const params = model.init();
    const options = { steps: 3, optimizer: new Sgd(), schedule: makeSchedule({ kind: "constant", lr: 1 }) };
    const two = batches(sequences.slice(0, 2), { batchSize: 1, seed: 0 });
    await expect(trainLocal(params, model, two, options)).rejects.toThrow(
      /ran out at step 2, micro-batch 0; 3 are needed/,
    );
    const broken = {
      ...model,
      lossAndGradients: async () => ({
        loss: 1,
        gradients: { logits: new Float32Array(257 * 257).fill(Number.NaN) },
      }),
      loss: model.loss,
    };
    const before = Float32Array.from(params.logits as Float32Array);
    await expect(
      trainLocal(params, broken, epochBatches(sequences, { batchSize: 1, seed: 0 }), options),
    ).rejects.toThrow(/gradient norm is NaN/);
    expect(params.logits).toEqual(before);
  });
});

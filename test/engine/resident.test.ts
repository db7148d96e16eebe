import { describe, expect, it } from "vitest";
import { buildSgdStepGraph } from "../../client/engine/build.ts";
import { OnnxGradientSource } from "../../client/engine/source.ts";
import { modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { LocalTrainer } from "../../client/participant/trainer.ts";
import { trainLocal, trainResident } from "../../client/train/loop.ts";
import { Sgd } from "../../client/train/optimizers.ts";
import type { ParamRecord } from "../../client/train/params.ts";
import { makeSchedule } from "../../client/train/schedule.ts";
import { buildPlan } from "../../core/plan.ts";
import { TINY_GPT2, TINY_LLAMA } from "./fixtures.ts";

// The weights-resident path does on the device what trainLocal does on the host. On the CPU its step outputs
// are host arrays, so `npm test` runs the same loop a GPU runs, only without the device memory.
const [batchSize, seqLen] = [2, 4];
const batchAt = (step: number) => ({
  batchSize,
  seqLen,
  inputIds: Int32Array.from({ length: 8 }, (_, i) => (i * 5 + step * 3) % 13),
  targets: Int32Array.from({ length: 8 }, (_, i) => (i * 7 + step) % 13),
  lossMask: Float32Array.from([1, 1, 1, 0, 1, 1, 1, 1]),
});
function* batches() {
  for (let step = 0; ; step++) yield batchAt(step);
}

describe.each([
  ["GPT-2", TINY_GPT2],
  ["LLaMA", TINY_LLAMA],
])("trainResident (%s)", (_, json) => {
  const config = parseModelConfig(json);
  const record = (): ParamRecord =>
    Object.fromEntries([...initWeights(config, 4)].map(([name, w]) => [name, w.data]));
  const schedule = makeSchedule({ kind: "constant", lr: 0.3 });

  // clipNorm 100 leaves these gradients alone; 0.05 clips every step.
  it.each([100, 0.05])("gives trainLocal's losses, norms and weights (clipNorm %s)", async (clipNorm) => {
    const source = new OnnxGradientSource(config, { batchSize, seqLen, threads: 1 });
    const [host, resident] = [record(), record()];
    const expected = await trainLocal(host, source, batches(), {
      steps: 5,
      optimizer: new Sgd(),
      schedule,
      clipNorm,
    });
    const got = await trainResident(resident, source.resident(clipNorm), batches(), { steps: 5, schedule });
    got.forEach((report, step) => {
      const want = expected[step] as (typeof expected)[number];
      expect(report.tokens).toBe(want.tokens);
      expect(report.loss).toBeCloseTo(want.loss, 5);
      expect(Math.abs(report.gradNorm - want.gradNorm)).toBeLessThan(1e-5 * want.gradNorm);
    });
    for (const [name, w] of Object.entries(host)) {
      const r = resident[name] as Float32Array;
      const worst = Math.max(...w.map((x, i) => Math.abs((r[i] as number) - x) / (1 + Math.abs(x))));
      expect(worst, name).toBeLessThan(1e-5);
    }
    expect(resident).not.toEqual(record()); // the steps moved the weights
    await source.release();
  });

  // Large models' next weights come back to the host in row blocks, assembled into one reused array per
  // parameter; one row per block here.
  it("gives the same weights when the next weights leave in row blocks", async () => {
    const whole = new OnnxGradientSource(config, { batchSize, seqLen, threads: 1 });
    const blocked = new OnnxGradientSource(config, { batchSize, seqLen, threads: 1, maxOutputBytes: 1 });
    const [a, b] = [record(), record()];
    for (const [params, source] of [
      [a, whole],
      [b, blocked],
    ] as const) {
      for (let round = 0; round < 2; round++) {
        await trainResident(params, source.resident(1), batches(), { steps: 3, schedule });
      }
    }
    expect(b).toEqual(a);
    expect(b).not.toEqual(record());
    await whole.release();
    await blocked.release();
  });

  it("leaves the weights as they were when a step fails", async () => {
    const source = new OnnxGradientSource(config, { batchSize, seqLen, threads: 1 });
    const params = record();
    const exploding = () => 1e30;
    await expect(
      trainResident(params, source.resident(1), batches(), { steps: 3, schedule: exploding }),
    ).rejects.toThrow(/NaN|Infinity/);
    expect(params).toEqual(record());
    await source.release();
  });
});

// An untied token embedding changes only on the rows a batch looks up, so on the host the step graph returns
// those rows (summed over the positions that share a row) and the session writes them into its copy of the table.
describe("trainResident with an untied token embedding", () => {
  const config = parseModelConfig(TINY_LLAMA);
  const record = (): ParamRecord =>
    Object.fromEntries([...initWeights(config, 5)].map(([name, w]) => [name, w.data]));
  // Rows 1 and 2 each looked up several times, some rows of the table never.
  const repeated = (step: number) => ({
    ...batchAt(step),
    inputIds: Int32Array.from([1, 1, 2, 1, 2, 2, 1, (step % 3) + 3]),
  });
  function* repeatedBatches() {
    for (let step = 0; ; step++) yield repeated(step);
  }

  it("returns the embedding's looked-up rows, not the whole table, where the weights come back to the host", () => {
    const embedding = "model.embed_tokens.weight";
    const hostStep = buildSgdStepGraph(config, { batchSize, seqLen }, 1, true);
    expect(hostStep.lookedUp?.map((l) => l.param)).toEqual([embedding]);
    expect(hostStep.blocks.map((b) => b.param)).not.toContain(embedding);
    expect(buildSgdStepGraph(config, { batchSize, seqLen }, 1, false).lookedUp).toEqual([]);
    // Tied, the table is also the head's weight: every row has a gradient.
    const tied = parseModelConfig({ ...TINY_LLAMA, tie_word_embeddings: true });
    expect(buildSgdStepGraph(tied, { batchSize, seqLen }, 1, true).lookedUp).toEqual([]);
  });

  it.each([100, 0.05])(
    "gives trainLocal's norms and weights when rows repeat in a batch (clipNorm %s)",
    async (clipNorm) => {
      const source = new OnnxGradientSource(config, { batchSize, seqLen, threads: 1 });
      const [host, resident] = [record(), record()];
      const schedule = makeSchedule({ kind: "constant", lr: 0.3 });
      const options = { steps: 4, schedule };
      const expected = await trainLocal(host, source, repeatedBatches(), {
        ...options,
        optimizer: new Sgd(),
        clipNorm,
      });
      const got = await trainResident(resident, source.resident(clipNorm), repeatedBatches(), options);
      got.forEach((report, step) => {
        const want = expected[step] as (typeof expected)[number];
        expect(Math.abs(report.gradNorm - want.gradNorm)).toBeLessThan(1e-5 * want.gradNorm);
      });
      for (const [name, w] of Object.entries(host)) {
        const r = resident[name] as Float32Array;
        const worst = Math.max(...w.map((x, i) => Math.abs((r[i] as number) - x) / (1 + Math.abs(x))));
        expect(worst, name).toBeLessThan(1e-5);
      }
      expect(resident["model.embed_tokens.weight"]).not.toEqual(record()["model.embed_tokens.weight"]);
      await source.release();
    },
  );
});

// What the client runs: LocalTrainer picks the resident path on a GPU; forced here on the CPU.
describe("LocalTrainer", () => {
  it("trains to the same weights with the weights resident or not", async () => {
    const config = parseModelConfig(TINY_GPT2);
    const plan = buildPlan(modelTensors(config), { totalK: 64 });
    const sequences = Array.from({ length: 6 }, (_, row) => {
      const ids = Int32Array.from({ length: 5 }, (_, i) => (row * 3 + i * 5) % 13);
      return {
        inputIds: ids.subarray(0, 4),
        targets: ids.subarray(1),
        lossMask: new Float32Array(4).fill(1),
      };
    });
    const data = { train: sequences.slice(0, 4), eval: sequences.slice(4) };
    const start = Float32Array.from([...initWeights(config, 2).values()].flatMap((t) => [...t.data]));
    const trained = [];
    for (const residentWeights of [false, true]) {
      const trainer = await LocalTrainer.create(config, plan, data, {
        device: "cpu",
        threads: 1,
        batchSize: 2,
        residentWeights,
      });
      const values = start.slice();
      const { steps, trainLoss } = await trainer.trainSteps(values, 3, 4, 0.2);
      expect(steps).toBe(4);
      expect(Number.isFinite(trainLoss)).toBe(true);
      trained.push(values);
    }
    const [host, resident] = trained as [Float32Array, Float32Array];
    expect(resident).not.toEqual(start);
    expect(resident).not.toEqual(host); // they round differently: the resident path did run
    const worst = Math.max(...host.map((x, i) => Math.abs((resident[i] as number) - x) / (1 + Math.abs(x))));
    expect(worst).toBeLessThan(1e-5);
  });
});

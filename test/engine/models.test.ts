import { describe, expect, it } from "vitest";
import { ForwardSession, LossSession, type Params, TrainingSession } from "../../client/engine/session.ts";
import { type ModelConfig, modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { TINY_GPT2, TINY_LLAMA } from "./fixtures.ts";
import { centralDifference, expectGradientsClose, randomArray } from "./gradcheck.ts";
import { gpt2Reference, llamaReference } from "./reference.ts";

const families: Record<string, object> = {
  "GPT-2": TINY_GPT2,
  "LLaMA, grouped-query attention, untied head": TINY_LLAMA,
  "LLaMA, attention bias on q/k/v/o, tied head": {
    ...TINY_LLAMA,
    attention_bias: true,
    tie_word_embeddings: true,
  },
  "Qwen2, q/k/v bias, one kv head": {
    ...TINY_LLAMA,
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    num_key_value_heads: 1,
  },
};

const [BATCH, SEQ] = [2, 5];

const reference = (config: ModelConfig, params: Params, seq: number[]) =>
  config.modelType === "gpt2" ? gpt2Reference(config, params, seq) : llamaReference(config, params, seq);

/** Initial weights plus noise so that norms, biases and the attention pattern are far from their trivial values. */
function float64Weights(config: ModelConfig): Map<string, { shape: number[]; data: Float64Array }> {
  const out = new Map<string, { shape: number[]; data: Float64Array }>();
  let seed = 10;
  for (const [name, w] of initWeights(config, 3)) {
    const noise = randomArray(w.data.length, seed++, -0.3, 0.3);
    out.set(name, { shape: w.shape, data: Float64Array.from(w.data, (v, i) => v + (noise[i] as number)) });
  }
  return out;
}

function tokens(seed: number, vocab: number): BigInt64Array {
  return BigInt64Array.from(randomArray(BATCH * SEQ, seed, 0, vocab), (v) => BigInt(Math.floor(v)));
}

describe.each(Object.entries(families))("%s", (_, json) => {
  const config = parseModelConfig(json);

  /** Checks the analytic gradient at each (tensor, flat index) against a float64 central difference. */
  async function checkAgainstFiniteDifferences(
    coordinates: (
      specs: ReturnType<typeof modelTensors>,
      batch: {
        inputIds: BigInt64Array;
        targets: BigInt64Array;
      },
    ) => [string, number][],
  ) {
    const session = await TrainingSession.create(config, {
      batchSize: BATCH,
      seqLen: SEQ,
      floatType: "float64",
    });
    const params = float64Weights(config);
    const batch = {
      inputIds: tokens(1, config.vocabSize),
      targets: tokens(2, config.vocabSize),
      lossMask: Float64Array.from([1, 1, 0, 1, 1, 0, 1, 1, 1, 1]),
    };
    const { loss, grads } = await session.step(params, batch);
    expect(loss).toBeGreaterThan(0);
    const lossAt = async () => (await session.step(params, batch)).loss;
    for (const [name, j] of coordinates(modelTensors(config), batch)) {
      const numeric = await centralDifference(params.get(name)?.data as Float64Array, j, lossAt);
      expectGradientsClose(grads.get(name)?.[j] as number, numeric, `${name}[${j}]`);
    }
    await session.release();
  }

  it("whole-model gradients match finite differences (3 coordinates of every tensor, float64)", () =>
    checkAgainstFiniteDifferences((specs) =>
      specs.flatMap((spec, t) =>
        [
          ...randomArray(
            3,
            50 + t,
            0,
            spec.shape.reduce((a, b) => a * b, 1),
          ),
        ].map((r): [string, number] => [spec.name, Math.floor(r)]),
      ),
    ));

  // A tied embedding's gradient gathers three terms: the head's dense product, its one-hot target rows and the
  // lookup rows. Random coordinates rarely land on the rows a batch uses, so these are checked on purpose.
  it("embedding gradients match finite differences on the rows the batch looks up and predicts", () =>
    checkAgainstFiniteDifferences((specs, { inputIds, targets }) => {
      const embedding = specs[0] as (typeof specs)[number];
      const width = embedding.shape[1] as number;
      const rows = [inputIds[0], inputIds[4], targets[0], targets[3]].map(Number);
      return rows.flatMap((row) =>
        [0, width - 1].map((col): [string, number] => [embedding.name, row * width + col]),
      );
    }));

  it("logits match an independent loop-by-loop float64 reference implementation", async () => {
    const session = await ForwardSession.create(config, {
      batchSize: BATCH,
      seqLen: SEQ,
      floatType: "float64",
    });
    const params = float64Weights(config);
    const ids = tokens(4, config.vocabSize);
    const logits = await session.logits(params, ids);
    const v = config.vocabSize;
    for (let b = 0; b < BATCH; b++) {
      const seq = Array.from(ids.subarray(b * SEQ, (b + 1) * SEQ), Number);
      const expected = reference(config, params, seq);
      expected.forEach((want, t) => {
        const got = logits.subarray((b * SEQ + t) * v, (b * SEQ + t + 1) * v);
        want.forEach((x, i) => {
          expect(Math.abs((got[i] as number) - x)).toBeLessThan(1e-9 * (1 + Math.abs(x)));
        });
      });
    }
    await session.release();
  });

  it.each([
    ["vocabulary chunks (the CPU's default)", "vocabChunks" as const],
    ["row blocks (GPUs' default)", "rowBlocks" as const],
  ])(
    "eval loss with the head in %s is the masked mean cross-entropy of the reference logits",
    async (_, lossHead) => {
      const options = { batchSize: BATCH, seqLen: SEQ, floatType: "float64" as const, lossHead };
      const session = await LossSession.create(config, options);
      const params = float64Weights(config);
      const [inputIds, targets] = [tokens(5, config.vocabSize), tokens(6, config.vocabSize)];
      const lossMask = Float64Array.from([0, 1, 1, 0, 1, 1, 1, 0, 0, 1]);
      let [sum, count] = [0, 0];
      for (let b = 0; b < BATCH; b++) {
        const seq = Array.from(inputIds.subarray(b * SEQ, (b + 1) * SEQ), Number);
        const logits = reference(config, params, seq);
        logits.forEach((row, t) => {
          const i = b * SEQ + t;
          const max = Math.max(...row);
          const logSumExp = max + Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
          sum += (lossMask[i] as number) * (logSumExp - (row[Number(targets[i])] as number));
          count += lossMask[i] as number;
        });
      }
      expect(await session.loss(params, { inputIds, targets, lossMask })).toBeCloseTo(sum / count, 10);
      await session.release();
    },
  );

  it("is causal: changing a later token leaves earlier logits unchanged", async () => {
    const session = await ForwardSession.create(config, { batchSize: BATCH, seqLen: SEQ });
    const params: Params = initWeights(config, 5);
    const ids = tokens(3, config.vocabSize);
    const before = await session.logits(params, ids);
    const changed = ids.slice();
    changed[3] = (changed[3] as bigint) === 0n ? 1n : 0n; // row 0, position 3
    const after = await session.logits(params, changed);
    const v = config.vocabSize;
    expect(after.subarray(0, 3 * v)).toEqual(before.subarray(0, 3 * v)); // positions 0..2 of row 0
    expect(after.subarray(SEQ * v)).toEqual(before.subarray(SEQ * v)); // the other sequence
    expect(after.subarray(3 * v, 4 * v)).not.toEqual(before.subarray(3 * v, 4 * v));
    await session.release();
  });
});

describe("initial weights", () => {
  const config = parseModelConfig(TINY_LLAMA);
  it("are deterministic by seed and differ between seeds", () => {
    const a = initWeights(config, 1);
    const b = initWeights(config, 1);
    const c = initWeights(config, 2);
    for (const [name, w] of a) expect(b.get(name)?.data).toEqual(w.data);
    expect(c.get("lm_head.weight")?.data).not.toEqual(a.get("lm_head.weight")?.data);
    expect(() => initWeights(config, 1.5)).toThrow(/seed must be an integer in \[0, 2\^32\)/);
  });
  it("follow the config's initializer range, norms at one", () => {
    const w = initWeights(parseModelConfig({ ...TINY_GPT2, n_embd: 64, initializer_range: 0.05 }), 1);
    const wte = w.get("wte.weight")?.data as Float32Array;
    const std = Math.sqrt(wte.reduce((s, x) => s + x * x, 0) / wte.length);
    expect(std).toBeGreaterThan(0.045);
    expect(std).toBeLessThan(0.055);
    expect([...(w.get("ln_f.weight")?.data ?? [])].every((x) => x === 1)).toBe(true);
    expect([...(w.get("h.0.attn.c_attn.bias")?.data ?? [])].every((x) => x === 0)).toBe(true);
  });
});

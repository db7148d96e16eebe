import { describe, expect, it } from "vitest";
import { generateGreedy } from "../../client/engine/generate.ts";
import { ForwardSession, TrainingSession } from "../../client/engine/session.ts";
import { parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { randomArray } from "./gradcheck.ts";

// 4 sequences of 16 uniformly random tokens over a 32-token vocabulary. Chance level is ln 32 ≈ 3.47 nats, and
// a model that only learned token frequencies stays near it (the batch's unigram entropy is above 3). A loss
// below 0.2 (probability > 0.8 on the right next token on average) is only reachable by memorizing each
// position's context, i.e. the forward pass, the gradients and the update all work together.
const VOCAB = 32;
const [BATCH, SEQ] = [4, 16];
const STEPS = 120;
const LEARNING_RATE = 0.5;
const THRESHOLD = 0.2;

const families = {
  "GPT-2": { model_type: "gpt2", vocab_size: VOCAB, n_positions: SEQ, n_embd: 32, n_layer: 2, n_head: 4 },
  LLaMA: {
    model_type: "llama",
    vocab_size: VOCAB,
    max_position_embeddings: SEQ,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
};

describe.each(Object.entries(families))("%s", (_, json) => {
  it(`overfits one batch with plain SGD: loss < ${THRESHOLD} after ${STEPS} steps (chance: ln ${VOCAB})`, async () => {
    const config = parseModelConfig(json);
    const session = await TrainingSession.create(config, { batchSize: BATCH, seqLen: SEQ, threads: 1 });
    const weights = initWeights(config, 1);
    const stream = BigInt64Array.from(randomArray(BATCH * (SEQ + 1), 9, 0, VOCAB), (v) =>
      BigInt(Math.floor(v)),
    );
    const inputIds = new BigInt64Array(BATCH * SEQ);
    const targets = new BigInt64Array(BATCH * SEQ);
    for (let b = 0; b < BATCH; b++) {
      inputIds.set(stream.subarray(b * (SEQ + 1), b * (SEQ + 1) + SEQ), b * SEQ);
      targets.set(stream.subarray(b * (SEQ + 1) + 1, (b + 1) * (SEQ + 1)), b * SEQ);
    }
    const batch = { inputIds, targets, lossMask: new Float32Array(BATCH * SEQ).fill(1) };
    const losses: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      const { loss, grads } = await session.step(weights, batch);
      losses.push(loss);
      for (const [name, g] of grads) {
        const w = weights.get(name)?.data as Float32Array;
        for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) - LEARNING_RATE * (g[i] as number);
      }
    }
    expect(losses[0]).toBeGreaterThan(0.8 * Math.log(VOCAB));
    expect(losses.at(-1)).toBeLessThan(THRESHOLD);
    await session.release();

    // The memorized sequence comes back under greedy decoding from its first four tokens.
    const forward = await ForwardSession.create(config, { batchSize: 1, seqLen: SEQ });
    const prompt = Array.from(stream.subarray(0, 4), Number);
    const continuation = await generateGreedy(forward, weights, prompt, { maxNewTokens: SEQ - 3 });
    expect(continuation).toEqual(Array.from(stream.subarray(4, SEQ + 1), Number));
    await forward.release();
  });
});

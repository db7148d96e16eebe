// The engine benchmark's reference model and batch (issue 3), shared by bench/engine.ts and
// bench/profile-engine.ts so both measure the same work.
export const REFERENCE_CONFIG = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 256,
  n_layer: 6,
  n_head: 8,
};
export const [BATCH, SEQ] = [8, 128];

/** A fixed full batch: token ids spread over the vocabulary, every position in the loss. */
export function referenceBatch(vocabSize: number) {
  const tokens = BATCH * SEQ;
  return {
    inputIds: BigInt64Array.from({ length: tokens }, (_, i) => BigInt((i * 7919) % vocabSize)),
    targets: BigInt64Array.from({ length: tokens }, (_, i) => BigInt((i * 7919 + 1) % vocabSize)),
    lossMask: new Float32Array(tokens).fill(1),
  };
}

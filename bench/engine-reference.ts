// The engine benchmark's reference model and batch (issue 3), shared by bench/engine.ts and
// bench/profile-engine.ts so both measure the same work.
import type { Gpt2Config } from "../client/models/index.ts";

export const REFERENCE_CONFIG = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 256,
  n_layer: 6,
  n_head: 8,
};
/** GPT-2 small's published shape (124M parameters): `BENCH_MODEL=gpt2-small npm run bench:engine` shows how
 * memory and speed go at the smallest model a user would fine-tune, where the process's fixed costs weigh less. */
export const GPT2_SMALL_CONFIG = { ...REFERENCE_CONFIG, n_embd: 768, n_layer: 12, n_head: 12 };
const BENCH_MODELS: Record<string, typeof REFERENCE_CONFIG> = {
  reference: REFERENCE_CONFIG,
  "gpt2-small": GPT2_SMALL_CONFIG,
};

/** The model a benchmark's environment variable names (default: the reference config). */
export function benchModel(variable: string): { name: string; config: typeof REFERENCE_CONFIG } {
  const name = process.env[variable] ?? "reference";
  const config = BENCH_MODELS[name];
  if (!config)
    throw new Error(`${variable} must be one of ${Object.keys(BENCH_MODELS).join(", ")}, got ${name}`);
  return { name, config };
}
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

/**
 * Activation bytes of a float32 GPT-2 training step: the forward tensors its reverse pass reads (this engine's
 * autodiff tape; test/engine/activations.test.ts counts them in the built graph). Per token and layer: each layer
 * norm's input (d, twice; the backward pass recomputes the normalized values from it); the matmuls' inputs (ln_1
 * and ln_2 outputs, merged heads, GELU output: d + d + d + 4d); q, k, v (3d; the backward pass recomputes the
 * attention probabilities from them); the GELU's input (4d; its backward pass recomputes the rest). See
 * client/engine/nn.ts. After the last layer: ln_f's input (d), the head's input (d), the log-probabilities (V;
 * counted whole, though the head computes them a block at a time) and the loss mask (1).
 */
export const ACTIVATION_FORMULA = "4 bytes · B·T · (L·16·d + 2·d + 1 + V)";
export function gpt2ActivationBytes(c: Gpt2Config, batch: number, seq: number): number {
  const d = c.hiddenSize;
  return 4 * batch * seq * (c.numLayers * 16 * d + 2 * d + 1 + c.vocabSize);
}

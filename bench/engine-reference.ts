// The engine benchmark's reference model and batch (issue 3), shared by bench/engine.ts and
// bench/profile-engine.ts so both measure the same work.
import type { Gpt2Config, LlamaConfig, ModelConfig } from "../client/models/index.ts";

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
/** The reference shape with LLaMA's layers (RMSNorm, rotary positions, SwiGLU at 8/3 · d, 4 key/value heads)
 * and an untied head, as TinyLlama and the Llama models have: `BENCH_MODEL=llama`. */
export const LLAMA_REFERENCE_CONFIG = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 50257,
  max_position_embeddings: 1024,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 6,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};
const BENCH_MODELS: Record<string, Record<string, unknown>> = {
  reference: REFERENCE_CONFIG,
  "gpt2-small": GPT2_SMALL_CONFIG,
  llama: LLAMA_REFERENCE_CONFIG,
};

/** The model a benchmark's environment variable names (default: the reference config). */
export function benchModel(variable: string): { name: string; config: Record<string, unknown> } {
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

/**
 * The same for the LLaMA family, with kv = key/value heads × head size and I the MLP's width. Per token and
 * layer: each RMSNorm's input and output (4d; the backward pass recomputes the scale); q, k and v (d + 2·kv,
 * after the rotation); the merged heads (d); the gate and up projections, the gate's SiLU and its product with up
 * (4I). After the last layer as for GPT-2. The weights' transposes the backward pass also reads are not
 * activations (onnxruntime folds them into its matrix products).
 */
export const LLAMA_ACTIVATION_FORMULA = "4 bytes · B·T · (L·(6·d + 2·kv + 4·I) + 2·d + 1 + V)";
export function llamaActivationBytes(c: LlamaConfig, batch: number, seq: number): number {
  const [d, kv] = [c.hiddenSize, c.numKvHeads * c.headDim];
  return (
    4 * batch * seq * (c.numLayers * (6 * d + 2 * kv + 4 * c.intermediateSize) + 2 * d + 1 + c.vocabSize)
  );
}

/** The activation bytes of `c`'s family, and the formula with its values. */
export function activationBytes(
  c: ModelConfig,
  batch: number,
  seq: number,
): { bytes: number; formula: string } {
  const sizes = `B=${batch}, T=${seq}, L=${c.numLayers}, d=${c.hiddenSize}, V=${c.vocabSize}`;
  if (c.modelType === "gpt2") {
    return { bytes: gpt2ActivationBytes(c, batch, seq), formula: `${ACTIVATION_FORMULA} with ${sizes}` };
  }
  return {
    bytes: llamaActivationBytes(c, batch, seq),
    formula: `${LLAMA_ACTIVATION_FORMULA} with ${sizes}, kv=${c.numKvHeads * c.headDim}, I=${c.intermediateSize}`,
  };
}

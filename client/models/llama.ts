// LLaMA-style decoders as Hugging Face names them (LlamaForCausalLM, also TinyLlama and SmolLM; Qwen2ForCausalLM):
// RMSNorm, rotary position embeddings, SwiGLU MLP, grouped-query attention, optional q/k/v(/o) biases, tied or
// separate output head. nn.Linear weights are stored [out, in], so projections are x @ Wᵀ + b.
import type { Tensor } from "../engine/graph.ts";
import { gather } from "../engine/indexing.ts";
import { causalAttention, linearOutIn, rmsNorm, silu } from "../engine/nn.ts";
import { add, concat, mul, neg, reshape, slice, transpose } from "../engine/ops.ts";
import {
  type ConfigJson,
  ModelConfigError,
  oneOf,
  optionalBoolean,
  optionalPositiveInt,
  optionalPositiveNumber,
  positiveInt,
  requireDivisible,
} from "./config.ts";
import type { InitRule, ModelOutput, ParamLookup, TensorSpec } from "./family.ts";

export interface LlamaConfig {
  modelType: "llama" | "qwen2";
  vocabSize: number;
  maxPositions: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** Bias on q/k/v projections (Qwen2 always; LLaMA when attention_bias). */
  qkvBias: boolean;
  /** Bias on the output projection (LLaMA's attention_bias covers o_proj too; Qwen2's does not). */
  outputBias: boolean;
  mlpBias: boolean;
  initializerRange: number;
}

export function parseLlamaConfig(json: ConfigJson, modelType: "llama" | "qwen2"): LlamaConfig {
  const hiddenSize = positiveInt(json, "hidden_size");
  const numHeads = positiveInt(json, "num_attention_heads");
  const numKvHeads = optionalPositiveInt(json, "num_key_value_heads", numHeads);
  requireDivisible("num_attention_heads", numHeads, numKvHeads, "num_key_value_heads");
  const headDim = optionalPositiveInt(json, "head_dim", hiddenSize / numHeads);
  if (!json.head_dim) requireDivisible("hidden_size", hiddenSize, numHeads, "num_attention_heads");
  if (headDim % 2 !== 0)
    throw new ModelConfigError(`rotary embeddings need an even head_dim, got ${headDim}`);
  oneOf(json, "hidden_act", ["silu"], "silu");
  if (json.use_sliding_window === true) {
    throw new ModelConfigError(
      "config.use_sliding_window is not supported; expected false",
      "use_sliding_window",
    );
  }
  const attentionBias = optionalBoolean(json, "attention_bias", false);
  return {
    modelType,
    vocabSize: positiveInt(json, "vocab_size"),
    maxPositions: positiveInt(json, "max_position_embeddings"),
    hiddenSize,
    intermediateSize: positiveInt(json, "intermediate_size"),
    numLayers: positiveInt(json, "num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: optionalPositiveNumber(json, "rms_norm_eps", 1e-6),
    ropeTheta: parseRopeTheta(json),
    tieWordEmbeddings: optionalBoolean(json, "tie_word_embeddings", false),
    qkvBias: modelType === "qwen2" || attentionBias,
    outputBias: modelType === "llama" && attentionBias,
    mlpBias: optionalBoolean(json, "mlp_bias", false),
    initializerRange: optionalPositiveNumber(json, "initializer_range", 0.02),
  };
}

/**
 * The rotary base. transformers v4 writes it as top-level `rope_theta` beside `rope_scaling`; v5 writes one
 * `rope_parameters` object ({"rope_type": "default", "rope_theta": …}). Only plain rotary embeddings are built,
 * so any scaling (linear, dynamic, yarn, llama3, …) is refused in either form rather than run without it.
 */
function parseRopeTheta(json: ConfigJson): number {
  if (json.rope_scaling !== undefined && json.rope_scaling !== null) {
    throw new ModelConfigError(
      "config.rope_scaling is not supported; expected null or absent",
      "rope_scaling",
    );
  }
  const topLevel = optionalPositiveNumber(json, "rope_theta", 10000);
  const params = json.rope_parameters;
  if (params === undefined || params === null) return topLevel;
  if (typeof params !== "object" || Array.isArray(params)) {
    throw new ModelConfigError(
      `config.rope_parameters must be an object like {"rope_type": "default", "rope_theta": 10000}, got ${JSON.stringify(params)}`,
      "rope_parameters",
    );
  }
  const rope = params as ConfigJson;
  const ropeType = rope.rope_type ?? "default";
  if (ropeType !== "default") {
    throw new ModelConfigError(
      `config.rope_parameters.rope_type ${JSON.stringify(ropeType)} is not supported; expected "default" or absent`,
      "rope_parameters",
    );
  }
  const theta = rope.rope_theta;
  if (theta === undefined || theta === null) return topLevel;
  if (typeof theta !== "number" || !Number.isFinite(theta) || theta <= 0) {
    throw new ModelConfigError(
      `config.rope_parameters.rope_theta must be a positive number, got ${JSON.stringify(theta)}`,
      "rope_parameters",
    );
  }
  if (json.rope_theta !== undefined && json.rope_theta !== null && topLevel !== theta) {
    throw new ModelConfigError(
      `config.rope_theta (${topLevel}) and config.rope_parameters.rope_theta (${theta}) disagree; expected one value, or only one of them`,
      "rope_theta",
    );
  }
  return theta;
}

export function llamaTensors(c: LlamaConfig): TensorSpec[] {
  const linear = (name: string, nIn: number, nOut: number, bias: boolean): TensorSpec[] => [
    { name: `${name}.weight`, shape: [nOut, nIn] },
    ...(bias ? [{ name: `${name}.bias`, shape: [nOut] }] : []),
  ];
  const d = c.hiddenSize;
  const qSize = c.numHeads * c.headDim;
  const kvSize = c.numKvHeads * c.headDim;
  const tensors: TensorSpec[] = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, d] }];
  for (let i = 0; i < c.numLayers; i++) {
    const layer = `model.layers.${i}`;
    tensors.push(
      { name: `${layer}.input_layernorm.weight`, shape: [d] },
      ...linear(`${layer}.self_attn.q_proj`, d, qSize, c.qkvBias),
      ...linear(`${layer}.self_attn.k_proj`, d, kvSize, c.qkvBias),
      ...linear(`${layer}.self_attn.v_proj`, d, kvSize, c.qkvBias),
      ...linear(`${layer}.self_attn.o_proj`, qSize, d, c.outputBias),
      { name: `${layer}.post_attention_layernorm.weight`, shape: [d] },
      ...linear(`${layer}.mlp.gate_proj`, d, c.intermediateSize, c.mlpBias),
      ...linear(`${layer}.mlp.up_proj`, d, c.intermediateSize, c.mlpBias),
      ...linear(`${layer}.mlp.down_proj`, c.intermediateSize, d, c.mlpBias),
    );
  }
  tensors.push({ name: "model.norm.weight", shape: [d] });
  if (!c.tieWordEmbeddings) tensors.push({ name: "lm_head.weight", shape: [c.vocabSize, d] });
  return tensors;
}

export function llamaInitRule(name: string, c: LlamaConfig): InitRule {
  if (name.endsWith("norm.weight")) return { kind: "ones" };
  if (name.endsWith(".bias")) return { kind: "zeros" };
  return { kind: "normal", std: c.initializerRange };
}

/** cos and sin tables [T, headDim] for positions 0..T-1; frequencies repeat across the two halves (HF layout). */
function rotaryTables(like: Tensor, c: LlamaConfig, t: number): [Tensor, Tensor] {
  const half = c.headDim / 2;
  const cos = new Float64Array(t * c.headDim);
  const sin = new Float64Array(t * c.headDim);
  for (let pos = 0; pos < t; pos++) {
    for (let i = 0; i < c.headDim; i++) {
      const angle = pos / c.ropeTheta ** ((2 * (i % half)) / c.headDim);
      cos[pos * c.headDim + i] = Math.cos(angle);
      sin[pos * c.headDim + i] = Math.sin(angle);
    }
  }
  return [like.graph.constant(cos, [t, c.headDim]), like.graph.constant(sin, [t, c.headDim])];
}

/** x·cos + rotate_half(x)·sin, where rotate_half([a, b]) = [−b, a] over the halves of the last axis. */
function rotate(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const d = x.shape[x.rank - 1] as number;
  const rotated = concat([neg(slice(x, -1, d / 2, d)), slice(x, -1, 0, d / 2)], -1);
  return add(mul(x, cos), mul(rotated, sin));
}

/** Final hidden states and output head for int64 token ids [B, T]. */
export function llamaOutput(c: LlamaConfig, p: ParamLookup, ids: Tensor): ModelOutput {
  const [b, t] = ids.shape as [number, number];
  const group = c.numHeads / c.numKvHeads;
  const optional = (name: string, present: boolean): Tensor | undefined => (present ? p(name) : undefined);
  const linear = (x: Tensor, name: string, bias: boolean): Tensor =>
    linearOutIn(x, p(`${name}.weight`), optional(`${name}.bias`, bias));
  // [B, T, heads·headDim] → [B, heads, T, headDim]
  const splitHeads = (x: Tensor, heads: number): Tensor =>
    transpose(reshape(x, [b, t, heads, c.headDim]), [0, 2, 1, 3]);

  const embed = p("model.embed_tokens.weight");
  const [cos, sin] = rotaryTables(embed, c, t);
  let x = gather(embed, ids);
  for (let i = 0; i < c.numLayers; i++) {
    const layer = `model.layers.${i}`;
    const h = rmsNorm(x, p(`${layer}.input_layernorm.weight`), c.rmsNormEps);
    const q = rotate(splitHeads(linear(h, `${layer}.self_attn.q_proj`, c.qkvBias), c.numHeads), cos, sin);
    const k = rotate(splitHeads(linear(h, `${layer}.self_attn.k_proj`, c.qkvBias), c.numKvHeads), cos, sin);
    const v = splitHeads(linear(h, `${layer}.self_attn.v_proj`, c.qkvBias), c.numKvHeads);
    // Query head j uses key/value head floor(j / group): group the query heads under their kv head.
    const attended = causalAttention(
      reshape(q, [b, c.numKvHeads, group, t, c.headDim]),
      reshape(k, [b, c.numKvHeads, 1, t, c.headDim]),
      reshape(v, [b, c.numKvHeads, 1, t, c.headDim]),
    );
    const merged = reshape(transpose(reshape(attended, [b, c.numHeads, t, c.headDim]), [0, 2, 1, 3]), [
      b,
      t,
      -1,
    ]);
    x = add(x, linear(merged, `${layer}.self_attn.o_proj`, c.outputBias));
    const h2 = rmsNorm(x, p(`${layer}.post_attention_layernorm.weight`), c.rmsNormEps);
    const gated = mul(
      silu(linear(h2, `${layer}.mlp.gate_proj`, c.mlpBias)),
      linear(h2, `${layer}.mlp.up_proj`, c.mlpBias),
    );
    x = add(x, linear(gated, `${layer}.mlp.down_proj`, c.mlpBias));
  }
  const head = c.tieWordEmbeddings ? embed : p("lm_head.weight");
  return { hidden: rmsNorm(x, p("model.norm.weight"), c.rmsNormEps), head };
}

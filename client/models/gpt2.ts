// GPT-2 (Radford et al. 2019) as Hugging Face's GPT2Model names it: learned positions, pre-LayerNorm blocks,
// tanh-GELU MLP, causal multi-head attention with a fused q/k/v projection, output head tied to `wte`.
// Conv1D weights are stored [in, out], so projections are x @ W + b.
import type { Tensor } from "../engine/graph.ts";
import { gather } from "../engine/indexing.ts";
import { causalAttention, geluTanh, layerNorm, linearInOut } from "../engine/nn.ts";
import { add, reshape, slice, transpose } from "../engine/ops.ts";
import {
  type ConfigJson,
  ModelConfigError,
  oneOf,
  optionalPositiveInt,
  optionalPositiveNumber,
  positiveInt,
  requireDivisible,
} from "./config.ts";
import type { InitRule, ModelOutput, ParamLookup, TensorSpec } from "./family.ts";

export interface Gpt2Config {
  modelType: "gpt2";
  vocabSize: number;
  maxPositions: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  innerSize: number;
  layerNormEps: number;
  initializerRange: number;
}

export function parseGpt2Config(json: ConfigJson): Gpt2Config {
  const hiddenSize = positiveInt(json, "n_embd", "hidden_size");
  const numHeads = positiveInt(json, "n_head", "num_attention_heads");
  requireDivisible("n_embd", hiddenSize, numHeads, "n_head");
  oneOf(json, "activation_function", ["gelu_new", "gelu_pytorch_tanh"], "gelu_new");
  if (json.tie_word_embeddings === false) {
    throw new ModelConfigError(
      "GPT-2 family: only tied embeddings are supported (tie_word_embeddings: true)",
    );
  }
  return {
    modelType: "gpt2",
    vocabSize: positiveInt(json, "vocab_size"),
    maxPositions: positiveInt(json, "n_positions", "max_position_embeddings"),
    hiddenSize,
    numLayers: positiveInt(json, "n_layer", "num_hidden_layers"),
    numHeads,
    innerSize: optionalPositiveInt(json, "n_inner", 4 * hiddenSize),
    layerNormEps: optionalPositiveNumber(json, "layer_norm_epsilon", 1e-5),
    initializerRange: optionalPositiveNumber(json, "initializer_range", 0.02),
  };
}

export function gpt2Tensors(c: Gpt2Config): TensorSpec[] {
  const d = c.hiddenSize;
  const norm = (name: string): TensorSpec[] => [
    { name: `${name}.weight`, shape: [d] },
    { name: `${name}.bias`, shape: [d] },
  ];
  const conv1d = (name: string, nIn: number, nOut: number): TensorSpec[] => [
    { name: `${name}.weight`, shape: [nIn, nOut] },
    { name: `${name}.bias`, shape: [nOut] },
  ];
  const tensors: TensorSpec[] = [
    { name: "wte.weight", shape: [c.vocabSize, d] },
    { name: "wpe.weight", shape: [c.maxPositions, d] },
  ];
  for (let i = 0; i < c.numLayers; i++) {
    tensors.push(
      ...norm(`h.${i}.ln_1`),
      ...conv1d(`h.${i}.attn.c_attn`, d, 3 * d),
      ...conv1d(`h.${i}.attn.c_proj`, d, d),
      ...norm(`h.${i}.ln_2`),
      ...conv1d(`h.${i}.mlp.c_fc`, d, c.innerSize),
      ...conv1d(`h.${i}.mlp.c_proj`, c.innerSize, d),
    );
  }
  tensors.push(...norm("ln_f"));
  return tensors;
}

/** HF GPT-2 initialization: N(0, 0.02) weights, residual output projections scaled by 1/√(2·layers). */
export function gpt2InitRule(name: string, c: Gpt2Config): InitRule {
  if (/\.ln_\d\.weight$|^ln_f\.weight$/.test(name)) return { kind: "ones" };
  if (name.endsWith(".bias")) return { kind: "zeros" };
  const residual = name.endsWith(".c_proj.weight");
  return {
    kind: "normal",
    std: residual ? c.initializerRange / Math.sqrt(2 * c.numLayers) : c.initializerRange,
  };
}

/** Final hidden states and output head for int64 token ids [B, T]. */
export function gpt2Output(c: Gpt2Config, p: ParamLookup, ids: Tensor): ModelOutput {
  const [b, t] = ids.shape as [number, number];
  const d = c.hiddenSize;
  const headDim = d / c.numHeads;
  const ln = (x: Tensor, name: string): Tensor =>
    layerNorm(x, p(`${name}.weight`), p(`${name}.bias`), c.layerNormEps);
  const conv1d = (x: Tensor, name: string): Tensor => linearInOut(x, p(`${name}.weight`), p(`${name}.bias`));

  let x = add(gather(p("wte.weight"), ids), slice(p("wpe.weight"), 0, 0, t));
  for (let i = 0; i < c.numLayers; i++) {
    const qkv = conv1d(ln(x, `h.${i}.ln_1`), `h.${i}.attn.c_attn`);
    // [B, T, 3D] → three [B, heads, T, headDim]
    const heads = (j: number): Tensor =>
      transpose(reshape(slice(qkv, -1, j * d, (j + 1) * d), [b, t, c.numHeads, headDim]), [0, 2, 1, 3]);
    const attended = causalAttention(heads(0), heads(1), heads(2));
    const merged = reshape(transpose(attended, [0, 2, 1, 3]), [b, t, d]);
    x = add(x, conv1d(merged, `h.${i}.attn.c_proj`));
    const hidden = geluTanh(conv1d(ln(x, `h.${i}.ln_2`), `h.${i}.mlp.c_fc`));
    x = add(x, conv1d(hidden, `h.${i}.mlp.c_proj`));
  }
  return { hidden: ln(x, "ln_f"), head: p("wte.weight") };
}

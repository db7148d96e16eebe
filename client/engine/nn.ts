// Building blocks shared by the model families, composed from the differentiable ops.
import type { Graph, OpDef, Tensor } from "./graph.ts";
import { headCrossEntropy, headNegLogLikelihood, type LogSoftmaxForm } from "./head.ts";
import {
  add,
  broadcastShape,
  div,
  matmul,
  mul,
  reduceSum,
  reshape,
  sigmoid,
  softmax,
  sqrt,
  sub,
  sumTo,
  tanh,
  transposeLast,
  zeroAfter,
} from "./ops.ts";

const lastDim = (x: Tensor): number => x.shape[x.rank - 1] as number;

const meanLast = (x: Tensor): Tensor => mul(reduceSum(x, [-1], true), 1 / lastDim(x));

// The activations below are composite ops whose backward rule recomputes their inner values from the input, as
// PyTorch's do. Differentiated op by op, the training graph would keep every intermediate until the backward
// pass: for GPT-2's GELU, x, x², x/2, tanh and 1 + tanh are 20·d floats per token and layer, where the input
// alone is 4·d. Recomputing costs a few elementwise passes over a tensor the backward pass reads anyway.

/** `x`, available only once the gradient `g` is. Otherwise a backward rule's recomputation from forward tensors
 * would run right after the forward pass (see zeroAfter), and every layer's recomputed tensors would be alive at
 * once, which is what recomputing is meant to avoid. */
const whenGradient = (x: Tensor, g: Tensor): Tensor => add(x, zeroAfter(g));

/** Node `type` over `inputs`, of `shape` and `wrt`'s float type, ending a composite op that is differentiated as
 * one with respect to `wrt`: `backward` gets the incoming gradient and `wrt` as they are once that gradient exists,
 * and recomputes what it needs from them. */
function recomputing<W extends [Tensor, ...Tensor[]]>(
  type: string,
  inputs: Tensor[],
  shape: readonly number[],
  wrt: W,
  backward: (g: Tensor, wrt: W) => Tensor[],
): Tensor {
  const op: OpDef = { type, backward: (g) => backward(g, wrt.map((t) => whenGradient(t, g)) as W) };
  return wrt[0].graph.apply(op, inputs, {}, [...shape], wrt[0].dtype, {}, wrt);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

/** w = √(2/π) · 0.044715 · x², the cubic term's share of tanh's argument x · (√(2/π) + w). */
const geluCubic = (x: Tensor): Tensor => mul(mul(x, x), SQRT_2_OVER_PI * GELU_CUBIC);

/** t = tanh(√(2/π) · (x + 0.044715 x³)) = tanh(x · (√(2/π) + w)). */
const geluTanhInner = (x: Tensor, w: Tensor): Tensor => tanh(mul(x, add(w, SQRT_2_OVER_PI)));

/** d/dx of x/2 · (1 + t) = (1 + t)/2 + x/2 · (1 − t²) · √(2/π)(1 + 3 · 0.044715 x²). With
 * k = x · (√(2/π)/2 + 3w/2) that is 1/2 + k + t · (1/2 − k·t): 13 elementwise passes where the formula as written
 * takes 17, each over the MLP's widest tensor. */
function geluTanhSlope(x: Tensor): Tensor {
  const w = geluCubic(x);
  const t = geluTanhInner(x, w);
  const k = mul(x, add(mul(w, 1.5), SQRT_2_OVER_PI / 2));
  return add(add(k, 0.5), mul(t, sub(0.5, mul(k, t))));
}

/** d/dx of x · σ(x) = σ(x) · (1 + x · (1 − σ(x))). */
function siluSlope(x: Tensor): Tensor {
  const s = sigmoid(x);
  return mul(s, add(mul(x, sub(1, s)), 1));
}

/** The product a · b that ends activation f(x), as one node whose gradient is g · f'(x), f' rebuilt from x. */
const activation = (x: Tensor, a: Tensor, b: Tensor, slope: (x: Tensor) => Tensor): Tensor =>
  recomputing("Mul", [a, b], x.shape, [x], (g, [x]) => [mul(g, slope(x))]);

/** GELU, tanh approximation (HF "gelu_new" / "gelu_pytorch_tanh"): x/2 · (1 + tanh(√(2/π)(x + 0.044715x³))). */
export const geluTanh = (x: Tensor): Tensor =>
  activation(x, mul(x, 0.5), add(geluTanhInner(x, geluCubic(x)), 1), geluTanhSlope);

/** SiLU, x · σ(x). */
export const silu = (x: Tensor): Tensor => activation(x, x, sigmoid(x), siluSlope);

// The norms recompute too: the backward pass rebuilds x̂ and its scale from x, where op by op it would keep
// x − μ, x̂ and σ (2d + 1 floats per token) from the forward pass.

/** x̂ = x / scale over the last axis: LayerNorm centers x first (scale σ = √(var + eps)), RMSNorm does not
 * (scale = √(mean(x²) + eps)). */
function normalize(x: Tensor, eps: number, centered: boolean): { normalized: Tensor; scale: Tensor } {
  const shifted = centered ? sub(x, meanLast(x)) : x;
  const scale = sqrt(add(meanLast(mul(shifted, shifted)), eps));
  return { normalized: div(shifted, scale), scale };
}

/**
 * x̂ · w (+ b) as one node whose backward pass recomputes x̂ from x. With ĝ = g ⊙ w:
 * dx = (ĝ − x̂ · mean(ĝ ⊙ x̂) − mean(ĝ)) / scale, without the mean(ĝ) term when x was not centered;
 * dw = Σ g ⊙ x̂ and db = Σ g over the leading axes.
 */
function norm(x: Tensor, weight: Tensor, bias: Tensor | undefined, eps: number, centered: boolean): Tensor {
  const backward = (g: Tensor, [x, weight]: [Tensor, Tensor, ...Tensor[]]): Tensor[] => {
    const { normalized, scale } = normalize(x, eps, centered);
    const gw = mul(g, weight);
    const along = sub(gw, mul(normalized, meanLast(mul(gw, normalized))));
    const dx = div(centered ? sub(along, meanLast(gw)) : along, scale);
    const dw = sumTo(mul(g, normalized), weight.shape);
    return bias ? [dx, dw, sumTo(g, bias.shape)] : [dx, dw];
  };
  const { normalized } = normalize(x, eps, centered);
  return bias
    ? recomputing("Add", [mul(normalized, weight), bias], x.shape, [x, weight, bias], backward)
    : recomputing("Mul", [normalized, weight], x.shape, [x, weight], backward);
}

export const layerNorm = (x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor =>
  norm(x, weight, bias, eps, true);

export const rmsNorm = (x: Tensor, weight: Tensor, eps: number): Tensor =>
  norm(x, weight, undefined, eps, false);

/** x @ W (+ b) for W stored [in, out] (GPT-2 Conv1D layout). */
export function linearInOut(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight);
  return bias ? add(y, bias) : y;
}

/** x @ Wᵀ (+ b) for W stored [out, in] (torch.nn.Linear layout). */
export function linearOutIn(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  return linearInOut(x, transposeLast(weight), bias);
}

const causalMasks = new WeakMap<Graph, Map<number, Tensor>>();

/** [T, T] additive mask: 0 where key ≤ query, a large negative number above the diagonal; one constant per graph
 * and length, which every layer (and the backward pass) shares. A finite value (not -inf) keeps 0·mask = 0 in the
 * backward pass; exp(-1e9) underflows to exactly 0 in float32 and float64. */
function causalMask(graph: Graph, t: number): Tensor {
  let masks = causalMasks.get(graph);
  if (!masks) {
    masks = new Map();
    causalMasks.set(graph, masks);
  }
  let mask = masks.get(t);
  if (!mask) {
    const values = new Float64Array(t * t);
    for (let q = 0; q < t; q++) for (let k = q + 1; k < t; k++) values[q * t + k] = -1e9;
    mask = graph.constant(values, [t, t]);
    masks.set(t, mask);
  }
  return mask;
}

/** softmax(q kᵀ / √d + causal) over the last axis: the attention probabilities. */
function attentionProbs(q: Tensor, k: Tensor): Tensor {
  const [t, d] = q.shape.slice(-2) as [number, number];
  return softmax(add(mul(matmul(q, transposeLast(k)), 1 / Math.sqrt(d)), causalMask(q.graph, t)));
}

/**
 * softmax(q kᵀ / √d + causal) v over the last two axes. Leading axes broadcast, so grouped-query attention
 * passes q as [B, kvHeads, group, T, d] and k, v as [B, kvHeads, 1, T, d] without copying k and v.
 *
 * The backward pass recomputes the probabilities P from q and k rather than keeping them: they are a·T floats
 * per token and layer (at GPT-2's 1024 positions, 12 · 1024 against the 18·d = 13,824 of everything else a layer
 * keeps), and recomputing them costs one q kᵀ product and a softmax per layer. With dP = g vᵀ and
 * dS = P ⊙ (dP − Σ_keys dP ⊙ P) / √d: dq = dS k, dk = dSᵀ q, dv = Pᵀ g.
 */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const [t, dv] = [q.shape[q.rank - 2] as number, lastDim(v)];
  const shape = [...broadcastShape(q.shape.slice(0, -2), v.shape.slice(0, -2)), t, dv];
  return recomputing("MatMul", [attentionProbs(q, k), v], shape, [q, k, v], (g, [q, k, v]) => {
    const probs = attentionProbs(q, k);
    const dProbs = matmul(g, transposeLast(v));
    const dScores = mul(
      mul(probs, sub(dProbs, reduceSum(mul(dProbs, probs), [-1], true))),
      1 / Math.sqrt(lastDim(q)),
    );
    return [
      sumTo(matmul(dScores, k), q.shape),
      sumTo(matmul(transposeLast(dScores), q), k.shape),
      sumTo(matmul(transposeLast(probs), g), v.shape),
    ];
  });
}

/** Per-row −log softmax(x Wᵀ)[target] → [N], for x [N, d], W [V, d] and int64 targets [N] (see head.ts). */
export type HeadLoss = (x: Tensor, weight: Tensor, targets: Tensor) => Tensor;

/** The head for training graphs: differentiable, `blockRows` positions at a time. */
export const headInRowBlocks =
  (blockRows: number, logSoftmax: LogSoftmaxForm = "fused"): HeadLoss =>
  (x, weight, targets) =>
    headCrossEntropy(x, weight, targets, blockRows, logSoftmax);

/** The head for graphs that only compute the loss: `chunkColumns` vocabulary entries at a time. */
export const headInVocabChunks =
  (chunkColumns: number): HeadLoss =>
  (x, weight, targets) =>
    headNegLogLikelihood(x, weight, targets, chunkColumns);

/** Σ mask·(−log p(target)) / Σ mask over all positions, where p = softmax(hidden · headᵀ): hidden [B, T, d],
 * head [V, d], targets int64 [B, T], mask [B, T]. */
export function maskedCrossEntropy(
  hidden: Tensor,
  head: Tensor,
  targets: Tensor,
  lossMask: Tensor,
  headLoss: HeadLoss,
): Tensor {
  const n = targets.size;
  const flat = reshape(hidden, [n, lastDim(hidden)]);
  const nll = headLoss(flat, head, reshape(targets, [n]));
  const flatMask = reshape(lossMask, [n]);
  return div(reduceSum(mul(nll, flatMask), [0], false), reduceSum(flatMask, [0], false));
}

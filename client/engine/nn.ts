// Building blocks shared by the model families, composed from the differentiable ops.
import type { Tensor } from "./graph.ts";
import { headCrossEntropy, type LogSoftmaxForm } from "./head.ts";
import {
  add,
  div,
  matmul,
  mul,
  reduceSum,
  reshape,
  sigmoid,
  softmax,
  sqrt,
  sub,
  tanh,
  transposeLast,
} from "./ops.ts";

const lastDim = (x: Tensor): number => x.shape[x.rank - 1] as number;

const meanLast = (x: Tensor): Tensor => mul(reduceSum(x, [-1], true), 1 / lastDim(x));

export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  const centered = sub(x, meanLast(x));
  const std = sqrt(add(meanLast(mul(centered, centered)), eps));
  return add(mul(div(centered, std), weight), bias);
}

export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return mul(div(x, sqrt(add(meanLast(mul(x, x)), eps))), weight);
}

/** GELU, tanh approximation (HF "gelu_new" / "gelu_pytorch_tanh"). */
export function geluTanh(x: Tensor): Tensor {
  const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
  return mul(mul(x, 0.5), add(tanh(inner), 1));
}

export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));

/** x @ W (+ b) for W stored [in, out] (GPT-2 Conv1D layout). */
export function linearInOut(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  const y = matmul(x, weight);
  return bias ? add(y, bias) : y;
}

/** x @ Wᵀ (+ b) for W stored [out, in] (torch.nn.Linear layout). */
export function linearOutIn(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
  return linearInOut(x, transposeLast(weight), bias);
}

/** [T, T] additive mask: 0 where key ≤ query, a large negative number above the diagonal. A finite value (not
 * -inf) keeps 0·mask = 0 in the backward pass; exp(-1e9) underflows to exactly 0 in float32 and float64. */
function causalMask(like: Tensor, t: number): Tensor {
  const values = new Float64Array(t * t);
  for (let q = 0; q < t; q++) for (let k = q + 1; k < t; k++) values[q * t + k] = -1e9;
  return like.graph.constant(values, [t, t]);
}

/** softmax(q kᵀ / √d + causal) v over the last two axes. Leading axes broadcast, so grouped-query attention
 * passes q as [B, kvHeads, group, T, d] and k, v as [B, kvHeads, 1, T, d] without copying k and v. */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
  const [t, d] = q.shape.slice(-2) as [number, number];
  const scores = add(mul(matmul(q, transposeLast(k)), 1 / Math.sqrt(d)), causalMask(q, t));
  return matmul(softmax(scores), v);
}

/** Σ mask·(−log p(target)) / Σ mask over all positions, where p = softmax(hidden · headᵀ): hidden [B, T, d],
 * head [V, d], targets int64 [B, T], mask [B, T]. The head runs `blockRows` positions at a time (head.ts). */
export function maskedCrossEntropy(
  hidden: Tensor,
  head: Tensor,
  targets: Tensor,
  lossMask: Tensor,
  blockRows: number,
  logSoftmax: LogSoftmaxForm = "fused",
): Tensor {
  const n = targets.size;
  const flat = reshape(hidden, [n, lastDim(hidden)]);
  const nll = headCrossEntropy(flat, head, reshape(targets, [n]), blockRows, logSoftmax);
  const flatMask = reshape(lossMask, [n]);
  return div(reduceSum(mul(nll, flatMask), [0], false), reduceSum(flatMask, [0], false));
}

// The output head and its cross-entropy as one op. Their [rows, vocab] tensors dominate a small model's memory
// (200 MB each for GPT-2's vocabulary at 1024 tokens), so neither is ever formed whole. For training, the forward
// pass runs a block of rows at a time, and the backward pass works from each block's log-probabilities without
// forming d logits. A graph that only needs the loss runs a chunk of the vocabulary at a time instead.
import { GraphShapeError, type OpDef, type Tensor } from "./graph.ts";
import { gather, requireInt64, scatterAddRows } from "./indexing.ts";
import {
  add,
  concat,
  matmul,
  mul,
  neg,
  reduceSum,
  reshape,
  slice,
  sub,
  transposeLast,
  zeroAfter,
} from "./ops.ts";

// Inner nodes of the composite: the composite's backward rule differentiates them together.
const LogSoftmaxOp: OpDef = { type: "LogSoftmax" };
const ReduceMaxOp: OpDef = { type: "ReduceMax" };
const LogOp: OpDef = { type: "Log" };
const GatherElementsOp: OpDef = { type: "GatherElements" };
const ExpOp: OpDef = { type: "Exp" };

/** How the head computes log-softmax: onnxruntime's LogSoftmax kernel, or x − max − log Σ exp(x − max) in
 * elementwise ops and reductions. The WebGPU provider has no LogSoftmax kernel, so there the fused node runs on
 * the CPU and each [rows, vocab] block crosses to the host and back (on an H200, 130 of the forward pass's
 * 148 ms of kernel time at the benchmark's reference config). */
export type LogSoftmaxForm = "fused" | "composed";

/** Each row's largest entry of a [rows, columns] tensor → [rows, 1]. */
const rowMax = (a: Tensor): Tensor =>
  a.graph.apply(ReduceMaxOp, [a, a.graph.int64([1])], { keepdims: 1 }, [a.shape[0] as number, 1], a.dtype);

function logSoftmaxRows(logits: Tensor, form: LogSoftmaxForm): Tensor {
  const { graph, dtype } = logits;
  const shape = [...logits.shape];
  if (form === "fused") return graph.apply(LogSoftmaxOp, [logits], { axis: -1 }, shape, dtype);
  const shifted = sub(logits, rowMax(logits));
  const sumExp = reduceSum(graph.apply(ExpOp, [shifted], {}, shape, dtype), [1], true);
  return sub(shifted, graph.apply(LogOp, [sumExp], {}, [...sumExp.shape], dtype));
}

function requireHeadShapes(op: string, x: Tensor, weight: Tensor, targets: Tensor): void {
  requireInt64(op, targets);
  const [rows, d] = x.shape;
  if (
    x.rank !== 2 ||
    weight.rank !== 2 ||
    weight.shape[1] !== d ||
    targets.rank !== 1 ||
    targets.size !== rows
  ) {
    throw new GraphShapeError(
      `${op}: x [${x.shape}], weight [${weight.shape}], targets [${targets.shape}]; ` +
        "expected x [N, d], weight [V, d], targets [N]",
    );
  }
}

function requirePositiveInteger(op: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new GraphShapeError(`${op}: ${name} must be a positive integer, got ${value}`);
  }
}

interface Block {
  start: number;
  end: number;
  targets: Tensor;
  logProbs: Tensor;
  /** log P[row, target] [rows, 1]. */
  picked: Tensor;
}

/** Rows [start, end) of `a`, or `a` itself when that is all of it. */
const rowsOf = (a: Tensor, start: number, end: number): Tensor =>
  start === 0 && end === a.shape[0] ? a : slice(a, 0, start, end);

/**
 * Per-row −log softmax(x Wᵀ)[target] → [N], for hidden states x [N, d], head weight W [V, d] (nn.Linear layout)
 * and int64 targets [N], `blockRows` rows at a time.
 *
 * Backward, with P = softmax(x Wᵀ) and g the gradient of each row's loss: d logits = g ⊙ (P − onehot(target)),
 * so dx = g ⊙ (P W − W[target]) and dW = Pᵀ (g ⊙ x) − Σ_rows onehot(target) ⊗ (g ⊙ x). The one-hot terms are a
 * row gather and a row scatter; P = exp(log P) comes from the forward pass's log-probabilities.
 */
export function headCrossEntropy(
  x: Tensor,
  weight: Tensor,
  targets: Tensor,
  blockRows: number,
  logSoftmax: LogSoftmaxForm = "fused",
): Tensor {
  requireHeadShapes("headCrossEntropy", x, weight, targets);
  requirePositiveInteger("headCrossEntropy", "blockRows", blockRows);
  const { graph } = x;
  const rows = x.shape[0] as number;
  const perBlock = Math.ceil(rows / Math.ceil(rows / blockRows));
  const blocks: Block[] = [];
  const losses: Tensor[] = [];
  for (let start = 0; start < rows; start += perBlock) {
    const end = Math.min(rows, start + perBlock);
    const logits = matmul(rowsOf(x, start, end), transposeLast(weight));
    const logProbs = logSoftmaxRows(logits, logSoftmax);
    const blockTargets = rowsOf(targets, start, end);
    const picked = graph.apply(
      GatherElementsOp,
      [logProbs, reshape(blockTargets, [end - start, 1])],
      { axis: 1 },
      [end - start, 1],
      x.dtype,
    );
    losses.push(neg(reshape(picked, [end - start])));
    blocks.push({ start, end, targets: blockTargets, logProbs, picked });
  }
  const op: OpDef = { type: "Concat", backward: (g) => headBackward(g, x, weight, targets, blocks) };
  return graph.apply(op, losses, { axis: 0 }, [rows], x.dtype, {}, [x, weight]);
}

function headBackward(g: Tensor, x: Tensor, weight: Tensor, targets: Tensor, blocks: Block[]): Tensor[] {
  const rows = x.shape[0] as number;
  const column = reshape(g, [rows, 1]);
  const scaledX = mul(x, column);
  const dx: Tensor[] = [];
  const dws: Tensor[] = [];
  for (const { start, end, targets: blockTargets, logProbs } of blocks) {
    const probs = x.graph.apply(ExpOp, [logProbs], {}, [...logProbs.shape], x.dtype);
    const oneHotRows = gather(weight, blockTargets);
    dx.push(mul(sub(matmul(probs, weight), oneHotRows), rowsOf(column, start, end)));
    // dWᵀ = (g ⊙ x)ᵀ P: transposing the [rows, d] operand, not the [rows, vocab] one.
    const blockDwT = matmul(transposeLast(rowsOf(scaledX, start, end)), probs);
    dws.push(dws.length > 0 ? add(dws[dws.length - 1] as Tensor, blockDwT) : blockDwT);
  }
  const dw = transposeLast(dws[dws.length - 1] as Tensor);
  const dxAll = blocks.length === 1 ? (dx[0] as Tensor) : concat(sequenced(dx, dws, blocks), 0);
  return [dxAll, scatterAddRows(dw, reshape(targets, [rows, 1]), neg(scaledX))];
}

/**
 * onnxruntime has no control edges, and its schedule is depth-first from the outputs, highest node index first.
 * Left alone it runs every block's forward and dx first and the dW sums and losses last, so all blocks' [rows,
 * vocab] log-probabilities and probabilities are alive at once. Adding 0 × (one element of the block's running
 * dW sum and of its picked log-probability) to each block's dx, created last block first, makes the schedule
 * finish each block's loss, dx and dW before the next block's forward. x + 0·y = x for finite y, and y (a
 * log-probability and a gradient entry) is finite whenever the loss and gradient are.
 */
function sequenced(dx: Tensor[], dws: Tensor[], blocks: Block[]): Tensor[] {
  const out: Tensor[] = new Array(dx.length);
  for (let b = dx.length - 1; b >= 0; b--) {
    const anchor = add(zeroAfter(dws[b] as Tensor), zeroAfter((blocks[b] as Block).picked));
    out[b] = add(dx[b] as Tensor, anchor);
  }
  return out;
}

/**
 * Per-row −log softmax(x Wᵀ)[target] → [N] as `headCrossEntropy` gives it, forward only (no backward rule), for
 * graphs that only compute the loss. It runs `chunkColumns` vocabulary entries at a time over all N rows, so
 * only one chunk's [N, columns] logits are alive at a time, and W passes through the matrix products once, not
 * once per row block. Each chunk gives every row its max m_c and s_c = Σ exp(logits − m_c); then
 * log Σ exp(logits) = m + log Σ_c s_c exp(m_c − m) with m = max_c m_c, and the target's logit is x · W[target].
 */
export function headNegLogLikelihood(
  x: Tensor,
  weight: Tensor,
  targets: Tensor,
  chunkColumns: number,
): Tensor {
  requireHeadShapes("headNegLogLikelihood", x, weight, targets);
  requirePositiveInteger("headNegLogLikelihood", "chunkColumns", chunkColumns);
  const { graph, dtype } = x;
  const [rows, vocab] = [x.shape[0] as number, weight.shape[0] as number];
  const perChunk = Math.ceil(vocab / Math.ceil(vocab / chunkColumns));
  const maxes: Tensor[] = [];
  const sums: Tensor[] = [];
  for (let start = 0; start < vocab; start += perChunk) {
    const end = Math.min(vocab, start + perChunk);
    const logits = matmul(x, transposeLast(rowsAfter(weight, start, end, sums[sums.length - 1])));
    const max = rowMax(logits);
    const sum = reduceSum(graph.apply(ExpOp, [sub(logits, max)], {}, [...logits.shape], dtype), [1], true);
    maxes.push(max);
    sums.push(sum);
  }
  const chunkMax = concat(maxes, 1);
  const max = rowMax(chunkMax);
  const rescaled = mul(
    concat(sums, 1),
    graph.apply(ExpOp, [sub(chunkMax, max)], {}, [...chunkMax.shape], dtype),
  );
  const logSumExp = add(max, graph.apply(LogOp, [reduceSum(rescaled, [1], true)], {}, [rows, 1], dtype));
  const picked = reduceSum(mul(x, gather(weight, targets)), [1], true);
  return reshape(sub(logSumExp, picked), [rows]);
}

const CastOp: OpDef = { type: "Cast" };
const Int64AddOp: OpDef = { type: "Add" };
const SliceOp: OpDef = { type: "Slice" };
const ONNX_INT64 = 7;

/**
 * Rows [start, end) of `a`, sliced only once `after` exists: the slice starts at start + int64(0 · after[0]).
 * (A sum of exponentials is finite unless the logits are not, and then the loss is NaN whatever is sliced.)
 * onnxruntime runs a node as soon as its inputs exist, and the chunks' weight slices depend on nothing else, so
 * unordered they were all taken up front, the whole head weight again. Alone in a process, the loss session
 * peaked 143 MiB above the process's RSS at GPT-2 small and 74 MiB at the benchmark's reference config; with the
 * chunks ordered through x (x + 0 · the previous sum) instead, 211 and 95 MiB.
 */
function rowsAfter(a: Tensor, start: number, end: number, after: Tensor | undefined): Tensor {
  if (!after) return rowsOf(a, start, end);
  const { graph } = a;
  const zero = graph.apply(CastOp, [reshape(zeroAfter(after), [1])], { to: ONNX_INT64 }, [1], "int64");
  const from = graph.apply(Int64AddOp, [graph.int64([start]), zero], {}, [1], "int64");
  const shape = [end - start, ...a.shape.slice(1)];
  return graph.apply(SliceOp, [a, from, graph.int64([end]), graph.int64([0])], {}, shape, a.dtype);
}

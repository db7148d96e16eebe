// Turns a model config into ONNX graphs: a training graph (loss and one gradient per parameter) and a forward
// graph (logits). Shapes are static: one graph per (batch size, sequence length).
import { type ModelConfig, modelOutput, modelTensors, type TensorSpec } from "../models/index.ts";
import { gradients } from "./autodiff.ts";
import { type FloatType, Graph, type OpDef, type Tensor } from "./graph.ts";
import type { LogSoftmaxForm } from "./head.ts";
import { gather, type LookedUpGradient, lookedUpGradient, onlyLookupOf } from "./indexing.ts";
import { headInRowBlocks, headInVocabChunks, linearOutIn, maskedCrossEntropy } from "./nn.ts";
import { toOnnxModel } from "./onnx.ts";
import { add, div, mul, reduceSum, slice, sqrt, sub } from "./ops.ts";

export interface GraphShape {
  batchSize: number;
  seqLen: number;
  /** float32 for training; float64 for finite-difference checks. */
  floatType?: FloatType;
  /** Largest gradient output in bytes (default MAX_OUTPUT_BYTES); larger gradients leave in row blocks. */
  maxOutputBytes?: number;
  /** Bytes of one block of logits in the differentiated head (default HEAD_BLOCK_BYTES); see head.ts. */
  headBlockBytes?: number;
  /** How a loss graph without gradients runs its head (default vocabulary chunks); see head.ts. */
  lossHead?: LossHead;
  /** The head's log-softmax (default fused); see head.ts. */
  logSoftmax?: LogSoftmaxForm;
}

/** A block of 64 MiB of logits: 4 blocks of 256 positions for GPT-2's vocabulary at 1024 positions. Peak memory
 * falls with smaller blocks; each block adds a [vocab, d] sum to the head's weight gradient. */
export const HEAD_BLOCK_BYTES = 64 * 2 ** 20;

/** The forward-only head: `headNegLogLikelihood` in chunks of HEAD_CHUNK_BYTES of logits but at least
 * MIN_CHUNK_COLUMNS vocabulary entries, or `headCrossEntropy`'s row blocks as in the training graphs. */
export type LossHead = "vocabChunks" | "rowBlocks";

/** 4 MiB of logits (1024 vocabulary entries at 1024 positions). Alone in a process at the reference config, the
 * loss session peaked 71–74 MiB above the process's RSS, against 120 MiB with 64 MiB row blocks. 16 MiB chunks
 * held about as much and ran 10% slower; 1 MiB chunks (256 entries) held 18 MiB more and ran 3% faster. */
const HEAD_CHUNK_BYTES = 4 * 2 ** 20;
/** Longer sequences or batches make the chunks narrower; below this width they would only multiply the nodes. */
const MIN_CHUNK_COLUMNS = 1024;

/** Bad arguments to the engine: wrong shapes, missing parameters, token ids out of range, and so on. */
export class EngineInputError extends Error {
  override name = "EngineInputError";
}

export interface BuiltGraph {
  onnx: Uint8Array;
  tensors: TensorSpec[];
  /** Outputs that leave in row blocks: the training graph's gradients, the SGD step graph's next weights. */
  blocks: RowBlock[];
  /** Parameters whose next weights leave as the rows the batch looked up (see buildSgdStepGraph). */
  lookedUp?: LookedUpRows[];
}

/** A lookup table's next values on the rows the batch looked up: row p of output `rows` goes to table row
 * `ids`[p] (rows looked up more than once carry the same values). */
export interface LookedUpRows {
  param: string;
  rows: string;
  ids: string;
}

/** Rows [offset / rowSize, …) of a per-parameter output of `param`: `shape` values starting at flat `offset`. */
export interface RowBlock {
  name: string;
  param: string;
  offset: number;
  shape: number[];
}

export const gradName = (param: string): string => `grad.${param}`;

/** onnxruntime-node copies every output into a new JavaScript buffer. glibc serves an allocation of 32 MiB or
 * more with a fresh mmap whose every page faults on first touch (16 µs a page on the reference machine: 0.2 s a
 * step for GPT-2's 51 MB embedding gradient), while smaller ones reuse freed heap memory. So larger outputs
 * leave the graph in row blocks of at most this size, which the session writes into one array. */
export const MAX_OUTPUT_BYTES = 16 * 2 ** 20;

/** Splits output `name` (of parameter `param`) into row blocks of at most `maxBytes` (or single rows), as even
 * as rows allow: `name` itself when it fits, else `name`.part<k>. */
function rowBlocks(
  name: string,
  param: string,
  t: Tensor,
  maxBytes: number,
): { output: RowBlock; tensor: Tensor }[] {
  const [rows = 1, ...rest] = t.shape;
  const bytes = t.size * (t.dtype === "float64" ? 8 : 4);
  const parts = Math.min(rows, Math.ceil(bytes / maxBytes));
  const shape = (n: number): number[] => (t.rank === 0 ? [] : [n, ...rest]);
  if (parts <= 1) return [{ output: { name, param, offset: 0, shape: shape(rows) }, tensor: t }];
  const perPart = Math.ceil(rows / parts);
  const rowSize = t.size / rows;
  const blocks = [];
  for (let start = 0, k = 0; start < rows; start += perPart, k++) {
    const end = Math.min(rows, start + perPart);
    const output = { name: `${name}.part${k}`, param, offset: start * rowSize, shape: shape(end - start) };
    blocks.push({ output, tensor: slice(t, 0, start, end) });
  }
  return blocks;
}

function forwardGraph(config: ModelConfig, shape: GraphShape) {
  const { batchSize, seqLen } = shape;
  for (const [key, value] of Object.entries({ batchSize, seqLen })) {
    if (!Number.isInteger(value) || value <= 0)
      throw new EngineInputError(`${key} must be a positive integer`);
  }
  if (seqLen > config.maxPositions) {
    throw new EngineInputError(
      `seqLen ${seqLen} exceeds the model's maximum of ${config.maxPositions} positions`,
    );
  }
  const floatType = shape.floatType ?? "float32";
  const graph = new Graph(floatType);
  const tensors = modelTensors(config);
  const params = tensors.map((t) => graph.input(t.name, t.shape, floatType, true));
  const byName = new Map(params.map((p) => [p.name, p]));
  const lookup = (name: string): Tensor => {
    const p = byName.get(name);
    if (!p) throw new Error(`model code asked for undeclared parameter ${name}`);
    return p;
  };
  const inputIds = graph.input("input_ids", [batchSize, seqLen], "int64");
  return { graph, tensors, params, output: modelOutput(config, lookup, inputIds) };
}

/** Inputs: parameters (HF names), input_ids int64 [B, T]. Output: logits [B, T, vocab]. */
export function buildForwardGraph(config: ModelConfig, shape: GraphShape): BuiltGraph {
  const { graph, tensors, output } = forwardGraph(config, shape);
  const logits = linearOutIn(output.hidden, output.head);
  return { onnx: toOnnxModel(graph, [{ name: "logits", tensor: logits }]), tensors, blocks: [] };
}

/** The forward pass to the masked mean cross-entropy, with the loss graphs' inputs. Only a graph that is
 * `differentiated` needs the head in row blocks. */
function lossOf(config: ModelConfig, shape: GraphShape, differentiated: boolean) {
  const { graph, tensors, params, output } = forwardGraph(config, shape);
  const targets = graph.input("targets", [shape.batchSize, shape.seqLen], "int64");
  const lossMask = graph.input("loss_mask", [shape.batchSize, shape.seqLen], graph.floatType);
  const floatBytes = graph.floatType === "float64" ? 8 : 4;
  const rows = shape.batchSize * shape.seqLen;
  const blockBytes = shape.headBlockBytes ?? HEAD_BLOCK_BYTES;
  const head =
    differentiated || shape.lossHead === "rowBlocks"
      ? headInRowBlocks(
          Math.max(1, Math.floor(blockBytes / (config.vocabSize * floatBytes))),
          shape.logSoftmax,
        )
      : headInVocabChunks(Math.max(MIN_CHUNK_COLUMNS, Math.floor(HEAD_CHUNK_BYTES / (rows * floatBytes))));
  const loss = maskedCrossEntropy(output.hidden, output.head, targets, lossMask, head);
  return { graph, tensors, params, loss };
}

function lossGraph(config: ModelConfig, shape: GraphShape, withGradients: boolean): BuiltGraph {
  const { graph, tensors, params, loss } = lossOf(config, shape, withGradients);
  const grads = withGradients ? gradients(loss, params) : [];
  const blocks = grads.flatMap((g, i) => {
    const param = (params[i] as Tensor).name;
    return rowBlocks(gradName(param), param, g, shape.maxOutputBytes ?? MAX_OUTPUT_BYTES);
  });
  const outputs = [
    { name: "loss", tensor: loss },
    ...blocks.map(({ output, tensor }) => ({ name: output.name, tensor })),
  ];
  return { onnx: toOnnxModel(graph, outputs), tensors, blocks: blocks.map((b) => b.output) };
}

export const nextParamName = (param: string): string => `next.${param}`;
const MaxOp: OpDef = { type: "Max" };
const ReduceSumSquareOp: OpDef = { type: "ReduceSumSquare" };

/** Σ x² along the last axis, in one pass and without an x² tensor the size of the gradient. */
function squaresAlongLastAxis(x: Tensor): Tensor {
  const { graph } = x;
  const axis = x.rank - 1;
  return graph.apply(
    ReduceSumSquareOp,
    [x, graph.int64([axis])],
    { keepdims: 0 },
    x.shape.slice(0, axis),
    x.dtype,
  );
}

/**
 * One SGD step inside the graph, for weights that stay on the device from step to step (see resident.ts).
 * Inputs: the training graph's and learning_rate (float scalar). Outputs: loss, grad_norm (the global norm of
 * the gradient before clipping) and next.<name> = w − learning_rate · s · g for every parameter, where
 * s = clipNorm / max(‖g‖, clipNorm) clips the global norm to clipNorm (s = 1 without clipNorm), as
 * client/train/gradients.ts does on the host. With `blockOutputs` (for outputs that come back to the host),
 * next weights larger than MAX_OUTPUT_BYTES leave in row blocks, as gradients do, and a table whose only use is
 * one row lookup (an untied token embedding) leaves as next.<name>.rows [N, d] with next.<name>.ids [N]: the rows
 * the batch looked up, the only ones that change. Its dense gradient and next weights are never formed.
 */
export function buildSgdStepGraph(
  config: ModelConfig,
  shape: GraphShape,
  clipNorm?: number,
  blockOutputs = true,
): BuiltGraph {
  if (clipNorm !== undefined && !(clipNorm > 0)) {
    throw new EngineInputError(`clipNorm must be > 0, got ${clipNorm}`);
  }
  const { graph, tensors, params, loss } = lossOf(config, shape, true);
  const learningRate = graph.input("learning_rate", [], graph.floatType);
  const lookups = params.map((w) => (blockOutputs ? onlyLookupOf(w) : undefined));
  // A lookup table's gradient is its lookup's gradient summed onto the rows looked up: taken before that sum.
  const wrt = params.map((w, i) => lookups[i]?.output ?? w);
  const grads = gradients(loss, wrt).map((g, i): ParamGradient => {
    const lookup = lookups[i];
    return lookup ? { rows: lookedUpGradient(lookup, g) } : { dense: g };
  });
  // Rows first, then their sums: one float32 sum over millions of squares is off by ~1e-5 relative (the host
  // sums in float64), and the clip scale with it.
  const squares = grads.map(({ dense, rows }) => {
    const sums = squaresAlongLastAxis(rows ? rows.distinct : (dense as Tensor));
    return sums.rank > 0 ? reduceSum(sums, [...sums.shape.keys()], false) : sums;
  });
  const norm = sqrt(squares.reduce((sum, sq) => add(sum, sq)));
  const step =
    clipNorm === undefined
      ? learningRate
      : mul(
          learningRate,
          div(clipNorm, graph.apply(MaxOp, [norm, graph.scalar(clipNorm)], {}, [], graph.floatType)),
        );
  const maxBytes = blockOutputs ? (shape.maxOutputBytes ?? MAX_OUTPUT_BYTES) : Number.POSITIVE_INFINITY;
  const blocks = grads.flatMap(({ dense }, i) => {
    const w = params[i] as Tensor;
    return dense ? rowBlocks(nextParamName(w.name), w.name, sub(w, mul(dense, step)), maxBytes) : [];
  });
  const lookedUp = grads.flatMap(({ rows }, i) => {
    const w = params[i] as Tensor;
    if (!rows) return [];
    const output = {
      param: w.name,
      rows: `${nextParamName(w.name)}.rows`,
      ids: `${nextParamName(w.name)}.ids`,
    };
    return [{ output, rows: sub(gather(w, rows.ids), mul(rows.perPosition, step)), ids: rows.ids }];
  });
  const outputs = [
    { name: "loss", tensor: loss },
    { name: "grad_norm", tensor: norm },
    // Largest first. onnxruntime-node copies the outputs into new buffers in this order; when the largest came
    // last they sat at the top of glibc's heap, and once freed a step later glibc handed them back to the kernel
    // and the next step faulted them in again: with an untied head (its blocks the last outputs), 10–17k pages
    // a step and 1.05 s steps instead of 0.85 s, at the reference shape with LLaMA's layers.
    ...[...blocks]
      .sort((a, b) => b.tensor.size - a.tensor.size)
      .map(({ output, tensor }) => ({ name: output.name, tensor })),
    ...lookedUp.flatMap(({ output, rows, ids }) => [
      { name: output.rows, tensor: rows },
      { name: output.ids, tensor: ids },
    ]),
  ];
  return {
    onnx: toOnnxModel(graph, outputs),
    tensors,
    blocks: blocks.map((b) => b.output),
    lookedUp: lookedUp.map((l) => l.output),
  };
}

/** One parameter's gradient: dense, or a lookup table's `LookedUpGradient`. */
type ParamGradient = { dense: Tensor; rows?: undefined } | { dense?: undefined; rows: LookedUpGradient };

/** Inputs: parameters, input_ids int64 [B, T], targets int64 [B, T], loss_mask float [B, T].
 * Outputs: loss (masked mean cross-entropy, scalar) and grad.<name> for every parameter, or its row blocks
 * grad.<name>.part<k> when it is larger than MAX_OUTPUT_BYTES (see `gradients`). */
export const buildTrainingGraph = (config: ModelConfig, shape: GraphShape): BuiltGraph =>
  lossGraph(config, shape, true);

/** The training graph's inputs and loss, without gradients (evaluation). */
export const buildLossGraph = (config: ModelConfig, shape: GraphShape): BuiltGraph =>
  lossGraph(config, shape, false);

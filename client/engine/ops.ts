// Differentiable ops. Each op states its forward (ONNX node + static output shape) and, right beside it, its
// backward expressed in the same ops. All ops are in ONNX opset 18 and have CPU kernels for float and double in
// onnxruntime. Binary ops broadcast numpy-style; a number operand becomes a scalar constant.
import {
  type Attrs,
  type FloatType,
  type Graph,
  GraphShapeError,
  type Node,
  type OpDef,
  Tensor,
} from "./graph.ts";

type Operand = Tensor | number;

const normAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function isFloat(t: Tensor): t is Tensor & { dtype: FloatType } {
  return t.dtype !== "int64";
}

function floatOp(op: OpDef, inputs: Tensor[], shape: number[], attrs: Attrs = {}): Tensor {
  const first = inputs[0] as Tensor;
  for (const t of inputs) {
    if (!isFloat(t)) throw new GraphShapeError(`${op.type}: expected a float tensor, got int64 ${t.name}`);
  }
  return first.graph.apply(op, inputs, attrs, shape, first.graph.floatType);
}

const inp = (node: Node, i: number): Tensor => node.inputs[i] as Tensor;

// ---- broadcasting -------------------------------------------------------------------------------------------

export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new GraphShapeError(`cannot broadcast [${a}] with [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Sums a broadcast gradient back down to `shape` (the adjoint of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? reduceSum(g, axes, true) : g;
  return summed.rank === shape.length ? summed : reshape(summed, [...shape]);
}

function operands(a: Operand, b: Operand): [Tensor, Tensor] {
  const graph = a instanceof Tensor ? a.graph : (b as Tensor).graph;
  const ta = a instanceof Tensor ? a : graph.scalar(a);
  const tb = b instanceof Tensor ? b : graph.scalar(b);
  return [ta, tb];
}

function binary(op: OpDef, a: Operand, b: Operand): Tensor {
  const [ta, tb] = operands(a, b);
  return floatOp(op, [ta, tb], broadcastShape(ta.shape, tb.shape));
}

// ---- elementwise --------------------------------------------------------------------------------------------

const AddOp: OpDef = {
  type: "Add",
  backward: (g, n) => [sumTo(g, inp(n, 0).shape), sumTo(g, inp(n, 1).shape)],
};
export const add = (a: Operand, b: Operand): Tensor => binary(AddOp, a, b);

const SubOp: OpDef = {
  type: "Sub",
  backward: (g, n) => [sumTo(g, inp(n, 0).shape), sumTo(neg(g), inp(n, 1).shape)],
};
export const sub = (a: Operand, b: Operand): Tensor => binary(SubOp, a, b);

const MulOp: OpDef = {
  type: "Mul",
  backward: (g, n) => [
    inp(n, 0).requiresGrad ? sumTo(mul(g, inp(n, 1)), inp(n, 0).shape) : null,
    inp(n, 1).requiresGrad ? sumTo(mul(g, inp(n, 0)), inp(n, 1).shape) : null,
  ],
};
export const mul = (a: Operand, b: Operand): Tensor => binary(MulOp, a, b);

const DivOp: OpDef = {
  type: "Div",
  // d(a/b)/db = -a/b² = -out/b
  backward: (g, n) => [
    inp(n, 0).requiresGrad ? sumTo(div(g, inp(n, 1)), inp(n, 0).shape) : null,
    inp(n, 1).requiresGrad ? sumTo(neg(div(mul(g, n.output), inp(n, 1))), inp(n, 1).shape) : null,
  ],
};
export const div = (a: Operand, b: Operand): Tensor => binary(DivOp, a, b);

function unary(op: OpDef, a: Tensor): Tensor {
  return floatOp(op, [a], [...a.shape]);
}

const NegOp: OpDef = { type: "Neg", backward: (g) => [neg(g)] };
export const neg = (a: Tensor): Tensor => unary(NegOp, a);

const TanhOp: OpDef = { type: "Tanh", backward: (g, n) => [mul(g, sub(1, mul(n.output, n.output)))] };
export const tanh = (a: Tensor): Tensor => unary(TanhOp, a);

const SigmoidOp: OpDef = { type: "Sigmoid", backward: (g, n) => [mul(g, mul(n.output, sub(1, n.output)))] };
export const sigmoid = (a: Tensor): Tensor => unary(SigmoidOp, a);

const SqrtOp: OpDef = { type: "Sqrt", backward: (g, n) => [div(mul(g, 0.5), n.output)] };
export const sqrt = (a: Tensor): Tensor => unary(SqrtOp, a);

// ---- matrix product -----------------------------------------------------------------------------------------

/** Swaps the last two axes. */
export function transposeLast(a: Tensor): Tensor {
  const perm = a.shape.map((_, i) => i);
  perm[a.rank - 2] = a.rank - 1;
  perm[a.rank - 1] = a.rank - 2;
  return transpose(a, perm);
}

/** Gradient of the right operand when it is a plain matrix: fold all leading axes of `a` and `g` into rows, so
 * the product is one [k,m]x[m,n] matmul instead of a per-batch [k,n] stack that is then summed. */
function matrixRightGrad(a: Tensor, g: Tensor): Tensor {
  const k = a.shape[a.rank - 1] as number;
  const n = g.shape[g.rank - 1] as number;
  return matmul(transposeLast(reshape(a, [a.size / k, k])), reshape(g, [g.size / n, n]));
}

const MatMulOp: OpDef = {
  type: "MatMul",
  backward: (g, n) => {
    const [a, b] = [inp(n, 0), inp(n, 1)];
    const da = a.requiresGrad ? sumTo(matmul(g, transposeLast(b)), a.shape) : null;
    let db: Tensor | null = null;
    if (b.requiresGrad)
      db = b.rank === 2 ? matrixRightGrad(a, g) : sumTo(matmul(transposeLast(a), g), b.shape);
    return [da, db];
  },
};
/** Batched matrix product of tensors of rank >= 2; leading axes broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || b.rank < 2)
    throw new GraphShapeError(`MatMul needs rank >= 2, got [${a.shape}] @ [${b.shape}]`);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) throw new GraphShapeError(`MatMul inner dimensions differ: [${a.shape}] @ [${b.shape}]`);
  const lead = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return floatOp(MatMulOp, [a, b], [...lead, m, n]);
}

// ---- shape ops ----------------------------------------------------------------------------------------------

const TransposeOp: OpDef = {
  type: "Transpose",
  backward: (g, n) => {
    const perm = n.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [transpose(g, inverse)];
  },
};
export function transpose(a: Tensor, perm: number[]): Tensor {
  if ([...perm].sort().some((p, i) => p !== i) || perm.length !== a.rank) {
    throw new GraphShapeError(`Transpose: [${perm}] is not a permutation of rank ${a.rank}`);
  }
  return a.graph.apply(
    TransposeOp,
    [a],
    { perm },
    perm.map((p) => a.shape[p] as number),
    a.dtype,
  );
}

const ReshapeOp: OpDef = { type: "Reshape", backward: (g, n) => [reshape(g, [...inp(n, 0).shape]), null] };
/** Reshape to a static shape; one dimension may be -1 (inferred). */
export function reshape(a: Tensor, shape: number[]): Tensor {
  const known = shape.filter((d) => d !== -1).reduce((x, y) => x * y, 1);
  const out = shape.map((d) => (d === -1 ? a.size / known : d));
  if (out.reduce((x, y) => x * y, 1) !== a.size || !out.every(Number.isInteger)) {
    throw new GraphShapeError(`Reshape: cannot view [${a.shape}] as [${shape}]`);
  }
  return a.graph.apply(ReshapeOp, [a, a.graph.int64(out)], {}, out, a.dtype);
}

const ExpandOp: OpDef = { type: "Expand", backward: (g, n) => [sumTo(g, inp(n, 0).shape), null] };
export function expand(a: Tensor, shape: number[]): Tensor {
  const out = broadcastShape(a.shape, shape);
  return a.graph.apply(ExpandOp, [a, a.graph.int64(shape)], {}, out, a.dtype);
}

/** Zeros of the graph's float type (a broadcast scalar, not a stored tensor). */
export const zeros = (graph: Graph, shape: readonly number[]): Tensor => expand(graph.scalar(0), [...shape]);

const ReduceSumOp: OpDef = {
  type: "ReduceSum",
  backward: (g, n) => {
    const a = inp(n, 0);
    const axes = n.meta.axes as number[];
    return [
      expand(
        reshape(
          g,
          a.shape.map((d, i) => (axes.includes(i) ? 1 : d)),
        ),
        [...a.shape],
      ),
      null,
    ];
  },
};
export function reduceSum(a: Tensor, axes: number[], keepdims: boolean): Tensor {
  const norm = axes.map((x) => normAxis(x, a.rank));
  if (norm.length === 0) throw new GraphShapeError("ReduceSum: empty axes would reduce everything in ONNX");
  const shape = a.shape.flatMap((d, i) => (norm.includes(i) ? (keepdims ? [1] : []) : [d]));
  const attrs = { keepdims: keepdims ? 1 : 0 };
  return a.graph.apply(ReduceSumOp, [a, a.graph.int64(norm)], attrs, shape, a.graph.floatType, {
    axes: norm,
  });
}

const SliceOp: OpDef = {
  type: "Slice",
  backward: (g, n) => {
    const a = inp(n, 0);
    const [axis, start, end] = [n.meta.axis, n.meta.start, n.meta.end] as number[] as [
      number,
      number,
      number,
    ];
    return [sliceGradient([g], a.shape, axis, start, end), null, null, null];
  },
};
/** a[..., start:end, ...] along one axis. */
export function slice(a: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis(axis, a.rank);
  const dim = a.shape[ax];
  if (dim === undefined || start < 0 || end > dim || start >= end) {
    throw new GraphShapeError(`Slice: [${start}, ${end}) out of range for axis ${axis} of [${a.shape}]`);
  }
  const shape = a.shape.map((d, i) => (i === ax ? end - start : d));
  const { graph } = a;
  const inputs = [a, graph.int64([start]), graph.int64([end]), graph.int64([ax])];
  return graph.apply(SliceOp, inputs, {}, shape, a.dtype, { axis: ax, start, end });
}

/**
 * A scalar 0 that exists only once `a` does: 0 · a[0]. onnxruntime has no control edges and runs a node as soon
 * as its inputs exist, so adding this to a node's input is how a graph makes that node wait for `a`. (0 · y = 0
 * for finite y; where a[0] is not finite, neither is what `a` feeds.)
 */
export function zeroAfter(a: Tensor): Tensor {
  let first = a;
  for (let axis = 0; axis < a.rank; axis++) first = slice(first, axis, 0, 1);
  return mul(reshape(first, []), 0);
}

// Backward-only: zero padding is the adjoint of Slice.
const PadOp: OpDef = { type: "Pad" };
function pad(a: Tensor, pads: number[]): Tensor {
  const shape = a.shape.map((d, i) => d + (pads[i] as number) + (pads[a.rank + i] as number));
  return a.graph.apply(PadOp, [a, a.graph.int64(pads)], {}, shape, a.dtype);
}

/** Slice gradients, by the range [start, end) of `axis` their parts fill (in order) in a tensor of the sliced shape. */
const sliceGradients = new WeakMap<Tensor, { parts: Tensor[]; axis: number; start: number; end: number }>();

/** The gradient of a tensor of `shape` whose slices [start, end) along `axis` received `parts`: their concatenation
 * padded with zeros, or only the concatenation once the slices cover the axis. */
function sliceGradient(parts: Tensor[], shape: readonly number[], axis: number, start: number, end: number) {
  const joined = parts.length === 1 ? (parts[0] as Tensor) : concat(parts, axis);
  const size = shape[axis] as number;
  if (start === 0 && end === size) return joined;
  const pads = shape.map(() => 0).concat(shape.map(() => 0));
  pads[axis] = start;
  pads[shape.length + axis] = size - end;
  const padded = pad(joined, pads);
  sliceGradients.set(padded, { parts, axis, start, end });
  return padded;
}

/**
 * Two gradients of one tensor from adjacent slices of it, as one: GPT-2 splits its fused q, k, v projection into
 * three slices, and their gradients met as three Pads of the whole [tokens, 3d] width and two Adds, where one
 * Concat writes that width once. Undefined for any other pair (the caller adds them).
 */
export function joinSliceGradients(a: Tensor, b: Tensor): Tensor | undefined {
  const [x, y] = [sliceGradients.get(a), sliceGradients.get(b)];
  if (!x || !y || x.axis !== y.axis) return undefined;
  const [first, second] = x.end === y.start ? [x, y] : y.end === x.start ? [y, x] : [];
  if (!first || !second) return undefined;
  return sliceGradient([...first.parts, ...second.parts], a.shape, x.axis, first.start, second.end);
}

const ConcatOp: OpDef = {
  type: "Concat",
  backward: (g, n) => {
    const axis = n.attrs.axis as number;
    let at = 0;
    return n.inputs.map((t) => {
      const d = t.shape[axis] as number;
      at += d;
      return slice(g, axis, at - d, at);
    });
  },
};
export function concat(parts: Tensor[], axis: number): Tensor {
  const first = parts[0] as Tensor;
  const ax = normAxis(axis, first.rank);
  const shape = [...first.shape];
  shape[ax] = parts.reduce((s, t) => s + (t.shape[ax] as number), 0);
  return floatOp(ConcatOp, parts, shape, { axis: ax });
}

// ---- softmax over the last axis ------------------------------------------------------------------------------

const SoftmaxOp: OpDef = {
  type: "Softmax",
  // dx = y ⊙ (g − Σ g⊙y)
  backward: (g, n) => [mul(n.output, sub(g, reduceSum(mul(g, n.output), [-1], true)))],
};
export const softmax = (a: Tensor): Tensor => floatOp(SoftmaxOp, [a], [...a.shape], { axis: -1 });

// Integer-indexed ops. Their backward rules scatter-add (ScatterND with reduction="add"), which costs
// O(gradient size) instead of the O(N·V·D) of a one-hot matmul.
import { GraphShapeError, type Node, type OpDef, type Tensor } from "./graph.ts";
import { add, reshape, zeros } from "./ops.ts";

const inp = (node: Node, i: number): Tensor => node.inputs[i] as Tensor;

export function requireInt64(op: string, t: Tensor): void {
  if (t.dtype !== "int64")
    throw new GraphShapeError(`${op}: indices must be int64, got ${t.dtype} ${t.name}`);
}

// Backward-only: scatter-add of rows.
const ScatterNDOp: OpDef = { type: "ScatterND" };

/** base with each row `updates[i]` added at row `indices[i]` (repeated rows accumulate). */
export function scatterAddRows(base: Tensor, indices: Tensor, updates: Tensor): Tensor {
  const attrs = { reduction: "add" };
  return base.graph.apply(ScatterNDOp, [base, indices, updates], attrs, [...base.shape], base.dtype);
}

/** Gather gradients (row scatters into zeros) and their rows, so sumGradients can scatter into another sum. */
const scattersIntoZeros = new WeakMap<Tensor, { indices: Tensor; updates: Tensor }>();

const GatherOp: OpDef = {
  type: "Gather",
  // Rows of the table that were looked up several times receive the sum of their gradients.
  backward: (g, n) => {
    const [table, ids] = [inp(n, 0), inp(n, 1)];
    const rows = {
      indices: reshape(ids, [ids.size, 1]),
      updates: reshape(g, [ids.size, ...table.shape.slice(1)]),
    };
    const grad = scatterAddRows(zeros(g.graph, table.shape), rows.indices, rows.updates);
    scattersIntoZeros.set(grad, rows);
    return [grad, null];
  },
};

/** a + b, except that a Gather gradient is scattered straight into the other term: for an embedding tied to the
 * output head that saves filling a [vocab, d] zero tensor and adding two [vocab, d] tensors every step. */
export function sumGradients(a: Tensor, b: Tensor): Tensor {
  const [dense, scatter] = scattersIntoZeros.has(b)
    ? [a, scattersIntoZeros.get(b)]
    : [b, scattersIntoZeros.get(a)];
  return scatter ? scatterAddRows(dense, scatter.indices, scatter.updates) : add(a, b);
}
/** Embedding lookup: rows of `table` ([V, ...]) at int64 `ids` of any shape → [...ids.shape, ...]. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  requireInt64("Gather", ids);
  const shape = [...ids.shape, ...table.shape.slice(1)];
  return table.graph.apply(GatherOp, [table, ids], { axis: 0 }, shape, table.dtype);
}

// Integer-indexed ops. Their backward rules scatter-add (ScatterElements with reduction="add"), which costs
// O(gradient size) instead of the O(N·V·D) of a one-hot matmul.
import { GraphShapeError, type Node, type OpDef, type Tensor } from "./graph.ts";
import { add, concat, expand, joinSliceGradients, reshape, zeros } from "./ops.ts";

const inp = (node: Node, i: number): Tensor => node.inputs[i] as Tensor;

export function requireInt64(op: string, t: Tensor): void {
  if (t.dtype !== "int64")
    throw new GraphShapeError(`${op}: indices must be int64, got ${t.dtype} ${t.name}`);
}

// Backward-only: scatters (of rows, and of a lookup's positions) and the concatenation of two scatters' row
// indices.
const ScatterElementsOp: OpDef = { type: "ScatterElements" };
const IndexConcatOp: OpDef = { type: "Concat" };

interface Rows {
  indices: Tensor;
  updates: Tensor;
}
/** Every row scatter's base and rows, so that a scatter meeting another in a gradient sum can join it. */
const rowScatters = new WeakMap<Tensor, Rows & { base: Tensor }>();

/**
 * base with each row `updates[i]` added at row `indices[i]` ([N, 1]); repeated rows accumulate in order.
 * ScatterElements rather than ScatterND: onnxruntime's CPU ScatterND with reduction "add" hands rows to
 * threads, and two threads adding into one row lose updates (seen with 2 threads in test/engine/indexing.test.ts,
 * and in a tied embedding's gradient on 16 cores). Its ScatterElements gives each thread its own columns, so
 * every output element is summed by one thread, in row order.
 */
export function scatterAddRows(base: Tensor, indices: Tensor, updates: Tensor): Tensor {
  const rowShape = updates.shape.slice(1).map(() => 1);
  const elementIndices = expand(reshape(indices, [indices.size, ...rowShape]), [...updates.shape]);
  const attrs = { axis: 0, reduction: "add" };
  const out = base.graph.apply(
    ScatterElementsOp,
    [base, elementIndices, updates],
    attrs,
    [...base.shape],
    base.dtype,
  );
  rowScatters.set(out, { base, indices, updates });
  return out;
}

/** The zero tables Gather gradients scatter into: such a gradient can go straight into another term instead. */
const zeroTables = new WeakSet<Tensor>();

/** The rows of a scatter into one of those zero tables (a Gather gradient, or several joined). */
function rowsIntoZeros(t: Tensor): Rows | undefined {
  const scatter = rowScatters.get(t);
  return scatter && zeroTables.has(scatter.base) ? scatter : undefined;
}

const GatherOp: OpDef = {
  type: "Gather",
  // Rows of the table that were looked up several times receive the sum of their gradients.
  backward: (g, n) => {
    const [table, ids] = [inp(n, 0), inp(n, 1)];
    const base = zeros(g.graph, table.shape);
    zeroTables.add(base);
    const updates = reshape(g, [ids.size, ...table.shape.slice(1)]);
    return [scatterAddRows(base, reshape(ids, [ids.size, 1]), updates), null];
  },
};

/**
 * a + b, except that a Gather gradient is scattered straight into the other term: for an embedding tied to the
 * output head that saves filling a [vocab, d] zero tensor and adding two [vocab, d] tensors every step. When the
 * other term is itself a row scatter (the head's one-hot rows), the two become one scatter over both sets of
 * rows: onnxruntime's scatter copies its whole [vocab, d] input first, so that is one copy instead of two.
 * Gradients of adjacent slices of one tensor become one Concat (`joinSliceGradients`).
 */
export function sumGradients(a: Tensor, b: Tensor): Tensor {
  const slices = joinSliceGradients(a, b);
  if (slices) return slices;
  const [other, rows] = rowsIntoZeros(b) ? [a, rowsIntoZeros(b)] : [b, rowsIntoZeros(a)];
  if (!rows) return add(a, b);
  const earlier = rowScatters.get(other);
  if (!earlier) return scatterAddRows(other, rows.indices, rows.updates);
  const indices = joinRows(earlier.indices, rows.indices);
  return scatterAddRows(earlier.base, indices, concat([earlier.updates, rows.updates], 0));
}

function joinRows(a: Tensor, b: Tensor): Tensor {
  const shape = [(a.shape[0] as number) + (b.shape[0] as number), ...a.shape.slice(1)];
  return a.graph.apply(IndexConcatOp, [a, b], { axis: 0 }, shape, a.dtype);
}
/** Embedding lookup: rows of `table` ([V, ...]) at int64 `ids` of any shape → [...ids.shape, ...]. */
export function gather(table: Tensor, ids: Tensor): Tensor {
  requireInt64("Gather", ids);
  const shape = [...ids.shape, ...table.shape.slice(1)];
  return table.graph.apply(GatherOp, [table, ids], { axis: 0 }, shape, table.dtype);
}

/** A lookup table's gradient, non-zero only on the rows looked up: `perPosition` [N, d] gives each position its
 * row's gradient (the sum over the positions that looked that row up), `distinct` [N, d] holds each looked-up
 * row's gradient once and zeros elsewhere (its squares sum to the table gradient's), `ids` [N] the rows. */
export interface LookedUpGradient {
  perPosition: Tensor;
  distinct: Tensor;
  ids: Tensor;
}

/** The Gather node that is `table`'s only use (an untied token embedding's), if it is. */
export function onlyLookupOf(table: Tensor): Node | undefined {
  const users = table.graph.nodes.filter((n) => n.inputs.includes(table));
  const [node] = users;
  const rowLookup = node?.op === GatherOp && node.inputs[0] === table;
  return users.length === 1 && rowLookup ? node : undefined;
}

/** The table's gradient from the gradient g of its lookup's output [..., d], in O(N·d + rows) without a
 * [rows, d] tensor: a position stands for each looked-up row (whichever of those that looked it up the scatter
 * keeps: any one will do), the positions' gradients are summed onto their row's stand-in, and read back for every
 * position. */
export function lookedUpGradient(lookup: Node, g: Tensor): LookedUpGradient {
  const { graph } = g;
  const [table, lookedUpIds] = lookup.inputs as [Tensor, Tensor];
  const ids = reshape(lookedUpIds, [lookedUpIds.size]);
  const n = ids.size;
  const rows = table.shape[0] as number;
  const positions = graph.int64(Array.from({ length: n }, (_, p) => p));
  const standInOfRow = graph.apply(
    ScatterElementsOp,
    [expand(graph.int64([0]), [rows]), ids, positions],
    { axis: 0 },
    [rows],
    "int64",
  );
  const standIn = gather(standInOfRow, ids);
  const distinct = scatterAddRows(zeros(graph, [n, g.size / n]), standIn, reshape(g, [n, g.size / n]));
  return { perPosition: gather(distinct, standIn), distinct, ids };
}

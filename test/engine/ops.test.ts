import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gradients } from "../../client/engine/autodiff.ts";
import { Graph, GraphShapeError, type Tensor } from "../../client/engine/graph.ts";
import { headCrossEntropy } from "../../client/engine/head.ts";
import { gather } from "../../client/engine/indexing.ts";
import {
  causalAttention,
  geluTanh,
  headInRowBlocks,
  layerNorm,
  maskedCrossEntropy,
  rmsNorm,
  silu,
} from "../../client/engine/nn.ts";
import * as op from "../../client/engine/ops.ts";
import { checkOpGradients, type OpCase } from "./gradcheck.ts";

// Every differentiable op, with broadcasting on both sides where the op broadcasts.
const cases: Record<string, OpCase> = {
  "add (broadcast right)": { shapes: [[2, 3], [3]], build: (a, b) => op.add(a, b) },
  "sub (broadcast both)": {
    shapes: [
      [2, 1, 3],
      [4, 3],
    ],
    build: (a, b) => op.sub(a, b),
  },
  "mul (broadcast size-1 axis)": {
    shapes: [
      [2, 3],
      [2, 1],
    ],
    build: (a, b) => op.mul(a, b),
  },
  "mul by a number": { shapes: [[3]], build: (a) => op.mul(op.mul(a, a), 3) },
  "div (broadcast)": { shapes: [[2, 3], [3]], positive: true, build: (a, b) => op.div(a, b) },
  neg: { shapes: [[2, 3]], build: (a) => op.neg(a) },
  tanh: { shapes: [[2, 3]], build: (a) => op.tanh(a) },
  sigmoid: { shapes: [[2, 3]], build: (a) => op.sigmoid(a) },
  sqrt: { shapes: [[2, 3]], positive: true, build: (a) => op.sqrt(a) },
  "matmul (batched @ matrix)": {
    shapes: [
      [2, 3, 4],
      [4, 5],
    ],
    build: (a, b) => op.matmul(a, b),
  },
  "matmul (broadcast batches)": {
    shapes: [
      [2, 1, 3, 4],
      [3, 4, 2],
    ],
    build: (a, b) => op.matmul(a, b),
  },
  "matmul (matrix @ batched)": {
    shapes: [
      [3, 4],
      [2, 4, 5],
    ],
    build: (a, b) => op.matmul(a, b),
  },
  transpose: { shapes: [[2, 3, 4]], build: (a) => op.transpose(a, [2, 0, 1]) },
  reshape: { shapes: [[2, 6]], build: (a) => op.reshape(op.mul(a, a), [3, -1]) },
  expand: { shapes: [[3, 1]], build: (a) => op.expand(a, [2, 3, 4]) },
  "reduceSum keepdims": { shapes: [[2, 3, 4]], build: (a) => op.reduceSum(op.mul(a, a), [1], true) },
  "reduceSum two axes": { shapes: [[2, 3, 4]], build: (a) => op.reduceSum(op.mul(a, a), [0, -1], false) },
  slice: { shapes: [[2, 5]], build: (a) => op.slice(op.mul(a, a), -1, 1, 4) },
  concat: {
    shapes: [
      [2, 2],
      [2, 3],
    ],
    build: (a, b) => op.concat([op.mul(a, a), b], 1),
  },
  // Their gradients meet as one Concat (joinSliceGradients).
  "slices that cover a tensor, as GPT-2 splits q, k and v": {
    shapes: [[2, 6]],
    build: (a) => {
      const sq = op.mul(a, a);
      const [q, k, v] = [0, 1, 2].map((j) => op.slice(sq, -1, 2 * j, 2 * j + 2)) as [Tensor, Tensor, Tensor];
      return op.concat([op.mul(q, v), op.mul(k, k)], -1);
    },
  },
  // Their gradients are added: one pair overlaps, one is adjacent only once another has been added.
  "slices that overlap or meet out of order": {
    shapes: [[2, 6]],
    build: (a) => {
      const sq = op.mul(a, a);
      const [mid, left, right, wide] = [
        [2, 4],
        [0, 2],
        [4, 6],
        [1, 5],
      ].map(([start, end]) => op.slice(sq, -1, start as number, end as number)) as Tensor[];
      return op.concat([op.mul(mid as Tensor, left as Tensor), right as Tensor, wide as Tensor], -1);
    },
  },
  softmax: { shapes: [[2, 5]], build: (a) => op.softmax(a) },
  "gather (repeated ids)": {
    shapes: [[5, 3]],
    build: (t) => gather(t, op.reshape(t.graph.int64([4, 1, 1, 0, 4, 2]), [2, 3])),
  },
  "head cross-entropy, log-softmax composed of reductions (as on WebGPU)": {
    shapes: [
      [5, 3],
      [6, 3],
    ],
    build: (x, w) => headCrossEntropy(x, w, x.graph.int64([5, 0, 2, 0, 1]), 2, "composed"),
  },
  // The table's gradient meets twice (a scatter from the lookup, a dense one from the product): a tied embedding.
  "gather then matmul with the same table (rows scattered into the dense gradient)": {
    shapes: [[5, 3]],
    build: (t) => op.matmul(gather(t, t.graph.int64([4, 1, 1])), op.transposeLast(t)),
  },
};

// Composites the models are built from: their gradients follow from the ops', checked here end to end.
const composites: Record<string, OpCase> = {
  layerNorm: { shapes: [[2, 5], [5], [5]], build: (x, w, b) => layerNorm(x, w, b, 1e-5) },
  rmsNorm: { shapes: [[2, 5], [5]], build: (x, w) => rmsNorm(x, w, 1e-6) },
  geluTanh: { shapes: [[2, 5]], build: (x) => geluTanh(x) },
  silu: { shapes: [[2, 5]], build: (x) => silu(x) },
  "causal attention (grouped)": {
    shapes: [
      [1, 2, 2, 3, 2],
      [1, 2, 1, 3, 2],
      [1, 2, 1, 3, 2],
    ],
    build: (q, k, v) => causalAttention(q, k, v),
  },
  "head cross-entropy, one block (repeated targets)": {
    shapes: [
      [4, 3],
      [5, 3],
    ],
    build: (x, w) => headCrossEntropy(x, w, x.graph.int64([2, 0, 2, 4]), 4),
  },
  "head cross-entropy, blocks of 2, 2 and 1 rows": {
    shapes: [
      [5, 3],
      [6, 3],
    ],
    build: (x, w) => headCrossEntropy(x, w, x.graph.int64([5, 0, 2, 0, 1]), 2),
  },
  // The table's gradient meets twice (scattered by the lookup, dense and scattered by the head): a tied embedding.
  "head cross-entropy tied to the embedding it looks up": {
    shapes: [[5, 3]],
    build: (t) => {
      const x = op.mul(gather(t, t.graph.int64([4, 1, 1])), 2);
      return headCrossEntropy(x, t, t.graph.int64([1, 3, 4]), 2);
    },
  },
  "masked cross-entropy": {
    shapes: [
      [2, 3, 4],
      [5, 4],
    ],
    build: (hidden, head) => {
      const g = hidden.graph;
      const targets = op.reshape(g.int64([0, 3, 3, 1, 4, 0]), [2, 3]);
      return maskedCrossEntropy(
        hidden,
        head,
        targets,
        g.constant([1, 0, 1, 1, 1, 0], [2, 3]),
        headInRowBlocks(4),
      );
    },
  },
};

describe("op gradients match central finite differences (float64 through onnxruntime)", () => {
  for (const [name, c] of Object.entries({ ...cases, ...composites })) {
    it(name, () => checkOpGradients(c));
  }

  it("broadcasting mul/add/sub/div over random compatible shapes", async () => {
    // A shape and a broadcast partner: each axis of the partner is either kept, set to 1, or dropped (leading).
    const shapePair = fc
      .array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 3 })
      .chain((shape) =>
        fc.tuple(
          fc.constant(shape),
          fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
          fc.integer({ min: 0, max: shape.length - 1 }),
          fc.constantFrom(op.add, op.sub, op.mul, op.div),
        ),
      );
    await fc.assert(
      fc.asyncProperty(shapePair, async ([shape, ones, drop, fn]) => {
        const partner = shape.map((d, i) => (ones[i] ? 1 : d)).slice(drop);
        await checkOpGradients({ shapes: [partner, shape], positive: true, build: (a, b) => fn(a, b) });
      }),
      { numRuns: 12, seed: 7 },
    );
  });
});

describe("gradients of slices", () => {
  /** The ops the graph runs to compute `t`, with the shapes they write (x's [4, 6] is "wide"). */
  const opsFor = (t: Tensor): string[] => {
    const live = new Set([t]);
    const types: string[] = [];
    for (const node of [...t.graph.nodes].reverse()) {
      if (!live.has(node.output)) continue;
      types.push(`${node.op.type}${node.output.shape.join(",") === "4,6" ? " wide" : ""}`);
      for (const input of node.inputs) live.add(input);
    }
    return types;
  };

  it("meet as one Concat when the slices cover the tensor, with no Pad or Add of its width", () => {
    const g = new Graph("float32");
    const x = g.input("x", [4, 6], "float32", true);
    const [q, k, v] = [0, 1, 2].map((j) => op.slice(x, -1, 2 * j, 2 * j + 2)) as [Tensor, Tensor, Tensor];
    const y = op.reduceSum(op.mul(op.mul(q, k), v), [0, 1], false);
    const [dx] = gradients(y, [x]) as [Tensor];
    const types = opsFor(dx);
    expect(types.filter((t) => t.startsWith("Concat"))).toEqual(["Concat wide"]);
    expect(types.filter((t) => t.startsWith("Pad") || t === "Add wide")).toEqual([]);
  });

  it("keep their zero padding while the slices leave part of the tensor out", () => {
    const g = new Graph("float32");
    const x = g.input("x", [4, 6], "float32", true);
    const [a, b] = [op.slice(x, -1, 1, 3), op.slice(x, -1, 3, 4)];
    const squares = (t: Tensor) => op.reduceSum(op.mul(t, t), [0, 1], false);
    const [dx] = gradients(op.add(squares(a), squares(b)), [x]) as [Tensor];
    const types = opsFor(dx);
    expect(types.filter((t) => t.startsWith("Pad") || t.startsWith("Concat"))).toEqual([
      "Pad wide",
      "Concat",
    ]);
    expect(types).not.toContain("Add wide");
  });
});

describe("graph construction rejects inconsistent shapes", () => {
  const g = new Graph("float32");
  const a = g.input("a", [2, 3], "float32");
  it("broadcast mismatch names both shapes", () => {
    expect(() => op.add(a, g.input("b", [4], "float32"))).toThrow(/cannot broadcast \[2,3\] with \[4\]/);
  });
  it("matmul inner dimensions", () => {
    expect(() => op.matmul(a, g.input("c", [2, 3], "float32"))).toThrow(GraphShapeError);
  });
  it("reshape size", () => {
    expect(() => op.reshape(a, [4, 2])).toThrow(/cannot view \[2,3\] as \[4,2\]/);
  });
  it("float op on integer ids", () => {
    expect(() => op.tanh(g.input("ids", [2], "int64"))).toThrow(/expected a float tensor/);
  });
});

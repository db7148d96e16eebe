import fc from "fast-check";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Graph, GraphShapeError, type Tensor } from "../../client/engine/graph.ts";
import { headCrossEntropy, headNegLogLikelihood } from "../../client/engine/head.ts";
import { toOnnxModel } from "../../client/engine/onnx.ts";
import { createSession } from "../../client/engine/session.ts";

interface HeadCase {
  rows: number;
  d: number;
  vocab: number;
  x: number[];
  weight: number[];
  targets: number[];
}

/** −log softmax(x Wᵀ)[target] per row, in float64 JavaScript. */
function reference({ rows, d, vocab, x, weight, targets }: HeadCase): number[] {
  return Array.from({ length: rows }, (_, r) => {
    const logits = Array.from({ length: vocab }, (_, v) => {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += (x[r * d + k] as number) * (weight[v * d + k] as number);
      return dot;
    });
    const max = Math.max(...logits);
    const logSumExp = max + Math.log(logits.reduce((sum, l) => sum + Math.exp(l - max), 0));
    return logSumExp - (logits[targets[r] as number] as number);
  });
}

/** Both heads' per-row losses for `c`, evaluated by onnxruntime in float64. */
async function evaluate(c: HeadCase, chunkColumns: number): Promise<{ chunked: number[]; blocks: number[] }> {
  const graph = new Graph("float64");
  const x = graph.input("x", [c.rows, c.d], "float64");
  const weight = graph.input("weight", [c.vocab, c.d], "float64");
  const targets = graph.input("targets", [c.rows], "int64");
  const outputs = [
    { name: "chunked", tensor: headNegLogLikelihood(x, weight, targets, chunkColumns) },
    { name: "blocks", tensor: headCrossEntropy(x, weight, targets, 2) },
  ];
  const session = await createSession(toOnnxModel(graph, outputs), {
    batchSize: 1,
    seqLen: 1,
    floatType: "float64",
  });
  const out = await session.run({
    x: new ort.Tensor("float64", Float64Array.from(c.x), [c.rows, c.d]),
    weight: new ort.Tensor("float64", Float64Array.from(c.weight), [c.vocab, c.d]),
    targets: new ort.Tensor("int64", BigInt64Array.from(c.targets.map(BigInt)), [c.rows]),
  });
  await session.release();
  const values = (name: string) => Array.from(out[name]?.data as Float64Array);
  return { chunked: values("chunked"), blocks: values("blocks") };
}

const headCase = fc
  .record({
    rows: fc.integer({ min: 1, max: 5 }),
    d: fc.integer({ min: 1, max: 4 }),
    vocab: fc.integer({ min: 1, max: 9 }),
    // Up to 400: logits far past exp's float64 range, which only a max-shifted log-sum-exp survives.
    scale: fc.constantFrom(1, 20, 400),
  })
  .chain(({ rows, d, vocab, scale }) =>
    fc.record({
      rows: fc.constant(rows),
      d: fc.constant(d),
      vocab: fc.constant(vocab),
      x: fc.array(fc.double({ min: -scale, max: scale, noNaN: true }), {
        minLength: rows * d,
        maxLength: rows * d,
      }),
      weight: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), {
        minLength: vocab * d,
        maxLength: vocab * d,
      }),
      targets: fc.array(fc.integer({ min: 0, max: vocab - 1 }), { minLength: rows, maxLength: rows }),
      chunkColumns: fc.integer({ min: 1, max: vocab + 2 }),
    }),
  );

describe("the forward-only head in vocabulary chunks", () => {
  it("gives −log softmax(x Wᵀ)[target], as the row-block head does, for any chunk width", async () => {
    await fc.assert(
      fc.asyncProperty(headCase, async ({ chunkColumns, ...c }) => {
        const { chunked, blocks } = await evaluate(c, chunkColumns);
        for (const [r, want] of reference(c).entries()) {
          expect(Math.abs((chunked[r] as number) - want)).toBeLessThan(1e-9 * (1 + Math.abs(want)));
          expect(Math.abs((chunked[r] as number) - (blocks[r] as number))).toBeLessThan(
            1e-9 * (1 + Math.abs(want)),
          );
        }
      }),
      { numRuns: 25 },
    );
  });

  // onnxruntime runs a node as soon as its inputs exist, so unordered chunks' logits would all be alive at once.
  it("starts each chunk's product only after the previous chunk's sum", () => {
    const graph = new Graph("float32");
    const x = graph.input("x", [4, 3], "float32");
    const weight = graph.input("weight", [10, 3], "float32");
    headNegLogLikelihood(x, weight, graph.int64([1, 2, 3, 9]), 3);
    const producer = new Map(graph.nodes.map((n) => [n.output, n]));
    const ancestors = (t: Tensor, seen = new Set<Tensor>()): Set<Tensor> => {
      for (const input of producer.get(t)?.inputs ?? []) {
        if (!seen.has(input)) {
          seen.add(input);
          ancestors(input, seen);
        }
      }
      return seen;
    };
    const products = graph.nodes.filter((n) => n.op.type === "MatMul").map((n) => n.output);
    const sums = graph.nodes
      .filter((n) => n.op.type === "ReduceSum" && n.inputs[0] && producer.get(n.inputs[0])?.op.type === "Exp")
      .map((n) => n.output);
    expect(products).toHaveLength(4); // chunks of 3, 3, 2 and 2 columns
    for (let k = 1; k < products.length; k++) {
      expect(ancestors(products[k] as Tensor).has(sums[k - 1] as Tensor)).toBe(true);
    }
  });

  it("rejects a chunk width that is not a positive integer, and mismatched shapes", () => {
    const graph = new Graph("float32");
    const x = graph.input("x", [4, 3], "float32");
    const weight = graph.input("weight", [10, 3], "float32");
    const targets = graph.int64([1, 2, 3, 9]);
    expect(() => headNegLogLikelihood(x, weight, targets, 0)).toThrow(
      new GraphShapeError("headNegLogLikelihood: chunkColumns must be a positive integer, got 0"),
    );
    expect(() => headNegLogLikelihood(x, graph.input("w2", [10, 2], "float32"), targets, 4)).toThrow(
      /expected x \[N, d\], weight \[V, d\], targets \[N\]/,
    );
  });
});

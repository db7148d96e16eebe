import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { Graph } from "../../client/engine/graph.ts";
import { scatterAddRows } from "../../client/engine/indexing.ts";
import { toOnnxModel } from "../../client/engine/onnx.ts";

describe("scatterAddRows", () => {
  // The embedding gradient of a batch that repeats tokens: thousands of rows added into a few. onnxruntime's
  // ScatterND lost a share of such updates on every run once it had 2 threads.
  it("adds every repeated row exactly, whatever the thread count", async () => {
    const [rows, width, tableRows] = [4096, 256, 4];
    const graph = new Graph("float32");
    const table = graph.input("table", [tableRows, width], "float32");
    const ids = graph.input("ids", [rows, 1], "int64");
    const updates = graph.input("updates", [rows, width], "float32");
    const onnx = toOnnxModel(graph, [{ name: "out", tensor: scatterAddRows(table, ids, updates) }]);
    const feeds = {
      table: new ort.Tensor("float32", new Float32Array(tableRows * width).fill(0.5), [tableRows, width]),
      ids: new ort.Tensor(
        "int64",
        BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % tableRows)),
        [rows, 1],
      ),
      updates: new ort.Tensor("float32", new Float32Array(rows * width).fill(1), [rows, width]),
    };
    for (const threads of [2, 4]) {
      const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: threads });
      for (let run = 0; run < 20; run++) {
        const out = (await session.run(feeds)).out?.data as Float32Array;
        expect(out.every((v) => v === 0.5 + rows / tableRows)).toBe(true);
      }
      await session.release();
    }
  });
});

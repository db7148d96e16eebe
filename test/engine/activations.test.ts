import { describe, expect, it } from "vitest";
import { gpt2ActivationBytes } from "../../bench/engine-reference.ts";
import { gradients } from "../../client/engine/autodiff.ts";
import { Graph, type Tensor } from "../../client/engine/graph.ts";
import { geluTanh, maskedCrossEntropy, silu } from "../../client/engine/nn.ts";
import { mul, reduceSum } from "../../client/engine/ops.ts";
import { type Gpt2Config, modelOutput, modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { TINY_GPT2 } from "./fixtures.ts";

/** Bytes of the forward tensors that the backward nodes read, in the training graph built for `config`. */
function tapeBytes(config: Gpt2Config, batch: number, seq: number): number {
  const graph = new Graph("float32");
  const params = modelTensors(config).map((t) => graph.input(t.name, t.shape, "float32", true));
  const byName = new Map(params.map((p) => [p.name, p]));
  const ids = graph.input("input_ids", [batch, seq], "int64");
  const { hidden, head } = modelOutput(config, (name) => byName.get(name) as Tensor, ids);
  const targets = graph.input("targets", [batch, seq], "int64");
  const mask = graph.input("loss_mask", [batch, seq], "float32");
  const loss = maskedCrossEntropy(hidden, head, targets, mask, batch * seq); // one block: the formula's tape
  return [...tape(loss, params)].reduce((bytes, t) => bytes + 4 * t.size, 0);
}

/** The forward tensors (float, not scalars, not graph inputs) that the backward nodes of `loss` read: the
 * activations training keeps. */
function tape(loss: Tensor, wrt: Tensor[]): Set<Tensor> {
  const { graph } = loss;
  const forward = new Set(graph.nodes.map((n) => n.output));
  const forwardNodes = graph.nodes.length;
  gradients(loss, wrt);
  const saved = new Set<Tensor>();
  for (const node of graph.nodes.slice(forwardNodes)) {
    for (const t of node.inputs) if (forward.has(t) && t.dtype !== "int64" && t.rank > 0) saved.add(t);
  }
  return saved;
}

describe("activations whose backward pass recomputes from the input", () => {
  it.each([
    ["geluTanh", geluTanh],
    ["silu", silu],
  ])("%s keeps only its input for the backward pass", (_, activation) => {
    const graph = new Graph("float32");
    const w = graph.input("w", [3, 4], "float32", true);
    const x = mul(w, w);
    const loss = reduceSum(activation(x), [0, 1], false);
    expect([...tape(loss, [w])].map((t) => t.name)).toEqual([x.name]);
  });
});

describe("the engine benchmark's activation formula", () => {
  it.each([
    [1, 3],
    [2, 5],
  ])("equals the training graph's tape for a tiny GPT-2, batch %i × %i", (batch, seq) => {
    const config = parseModelConfig(TINY_GPT2) as Gpt2Config;
    expect(tapeBytes(config, batch, seq)).toBe(gpt2ActivationBytes(config, batch, seq));
  });
});

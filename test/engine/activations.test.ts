import { describe, expect, it } from "vitest";
import { gpt2ActivationBytes, llamaActivationBytes } from "../../bench/engine-reference.ts";
import { gradients } from "../../client/engine/autodiff.ts";
import { Graph, type Tensor } from "../../client/engine/graph.ts";
import {
  causalAttention,
  geluTanh,
  headInRowBlocks,
  layerNorm,
  maskedCrossEntropy,
  rmsNorm,
  silu,
} from "../../client/engine/nn.ts";
import { mul, reduceSum } from "../../client/engine/ops.ts";
import {
  type Gpt2Config,
  type LlamaConfig,
  type ModelConfig,
  modelOutput,
  modelTensors,
  parseModelConfig,
} from "../../client/models/index.ts";
import { TINY_GPT2, TINY_LLAMA } from "./fixtures.ts";

/** Bytes of the forward tensors that the backward nodes read, in the training graph built for `config`, less
 * the weights' transposes (weights, not activations; onnxruntime folds them into its matrix products). */
function tapeBytes(config: ModelConfig, batch: number, seq: number): number {
  const graph = new Graph("float32");
  const params = modelTensors(config).map((t) => graph.input(t.name, t.shape, "float32", true));
  const byName = new Map(params.map((p) => [p.name, p]));
  const ids = graph.input("input_ids", [batch, seq], "int64");
  const { hidden, head } = modelOutput(config, (name) => byName.get(name) as Tensor, ids);
  const targets = graph.input("targets", [batch, seq], "int64");
  const mask = graph.input("loss_mask", [batch, seq], "float32");
  const loss = maskedCrossEntropy(hidden, head, targets, mask, headInRowBlocks(batch * seq)); // one block: the formula's tape
  const saved = tape(loss, params);
  const weights = new Set(params);
  const transposed = graph.nodes.filter(
    (n) => n.op.type === "Transpose" && weights.has(n.inputs[0] as Tensor),
  );
  for (const node of transposed) saved.delete(node.output);
  return [...saved].reduce((bytes, t) => bytes + 4 * t.size, 0);
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

/** The nodes `gradients` adds for `loss`, each with whether it waits for the loss's gradient (depends on the
 * gradient seed, the first node gradients builds). */
function backwardNodes(loss: Tensor, wrt: Tensor[]) {
  const { graph } = loss;
  const forwardNodes = graph.nodes.length;
  gradients(loss, wrt);
  const waits = new Set<Tensor>();
  return graph.nodes.slice(forwardNodes).map((node, i) => {
    const waitsForGradient = i === 0 || node.inputs.some((t) => waits.has(t));
    if (waitsForGradient) waits.add(node.output);
    return { type: node.op.type, waitsForGradient };
  });
}

describe("ops whose backward pass recomputes from their inputs", () => {
  const square = (graph: Graph, shape: number[], name: string) => {
    const w = graph.input(name, shape, "float32", true);
    return { w, x: mul(w, w) };
  };
  const cases: [string, (graph: Graph) => { loss: Tensor; wrt: Tensor[]; kept: Tensor[] }][] = [
    [
      "geluTanh",
      (graph) => {
        const { w, x } = square(graph, [3, 4], "w");
        return { loss: reduceSum(geluTanh(x), [0, 1], false), wrt: [w], kept: [x] };
      },
    ],
    [
      "silu",
      (graph) => {
        const { w, x } = square(graph, [3, 4], "w");
        return { loss: reduceSum(silu(x), [0, 1], false), wrt: [w], kept: [x] };
      },
    ],
    [
      "causalAttention",
      (graph) => {
        const [q, k, v] = [
          square(graph, [2, 3, 4], "q"),
          square(graph, [2, 3, 4], "k"),
          square(graph, [2, 3, 4], "v"),
        ];
        const out = causalAttention(q.x, k.x, v.x);
        return { loss: reduceSum(out, [0, 1, 2], false), wrt: [q.w, k.w, v.w], kept: [q.x, k.x, v.x] };
      },
    ],
    [
      "layerNorm",
      (graph) => {
        const [{ w, x }, weight, bias] = [
          square(graph, [3, 4], "w"),
          graph.input("weight", [4], "float32", true),
          graph.input("bias", [4], "float32", true),
        ];
        const loss = reduceSum(layerNorm(x, weight, bias, 1e-5), [0, 1], false);
        return { loss, wrt: [w, weight, bias], kept: [x] };
      },
    ],
    [
      "rmsNorm",
      (graph) => {
        const [{ w, x }, weight] = [square(graph, [3, 4], "w"), graph.input("weight", [4], "float32", true)];
        const loss = reduceSum(rmsNorm(x, weight, 1e-6), [0, 1], false);
        return { loss, wrt: [w, weight], kept: [x] };
      },
    ],
  ];

  it.each(cases)("%s keeps only its inputs for the backward pass", (_, build) => {
    const { loss, wrt, kept } = build(new Graph("float32"));
    expect(new Set([...tape(loss, wrt)].map((t) => t.name))).toEqual(new Set(kept.map((t) => t.name)));
  });

  // onnxruntime runs a node as soon as its inputs exist: a recomputation that did not wait for the gradient would
  // run right after the forward pass, and every layer's recomputed tensors would be alive at once.
  it.each(cases)("%s recomputes only once the gradient reaches it", (_, build) => {
    const { loss, wrt } = build(new Graph("float32"));
    const recomputed = backwardNodes(loss, wrt).filter((n) =>
      ["Tanh", "Sigmoid", "Softmax", "Sqrt"].includes(n.type),
    );
    expect(recomputed.length).toBeGreaterThan(0);
    expect(recomputed.filter((n) => !n.waitsForGradient)).toEqual([]);
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

  it.each([
    ["LLaMA, untied", TINY_LLAMA],
    ["LLaMA, tied", { ...TINY_LLAMA, tie_word_embeddings: true }],
    ["Qwen2 (q, k, v biases)", { ...TINY_LLAMA, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }],
  ])("equals the training graph's tape for a tiny %s, batch 2 × 5", (_, json) => {
    const config = parseModelConfig(json) as LlamaConfig;
    expect(tapeBytes(config, 2, 5)).toBe(llamaActivationBytes(config, 2, 5));
  });
});

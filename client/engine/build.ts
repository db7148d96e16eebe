// Turns a model config into ONNX graphs: a training graph (loss and one gradient per parameter) and a forward
// graph (logits). Shapes are static: one graph per (batch size, sequence length).
import { type ModelConfig, modelLogits, modelTensors, type TensorSpec } from "../models/index.ts";
import { gradients } from "./autodiff.ts";
import { type FloatType, Graph, type Tensor } from "./graph.ts";
import { maskedCrossEntropy } from "./nn.ts";
import { toOnnxModel } from "./onnx.ts";

export interface GraphShape {
  batchSize: number;
  seqLen: number;
  /** float32 for training; float64 for finite-difference checks. */
  floatType?: FloatType;
}

/** Bad arguments to the engine: wrong shapes, missing parameters, token ids out of range, and so on. */
export class EngineInputError extends Error {
  override name = "EngineInputError";
}

export interface BuiltGraph {
  onnx: Uint8Array;
  tensors: TensorSpec[];
}

export const gradName = (param: string): string => `grad.${param}`;

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
  return { graph, tensors, params, logits: modelLogits(config, lookup, inputIds) };
}

/** Inputs: parameters (HF names), input_ids int64 [B, T]. Output: logits [B, T, vocab]. */
export function buildForwardGraph(config: ModelConfig, shape: GraphShape): BuiltGraph {
  const { graph, tensors, logits } = forwardGraph(config, shape);
  return { onnx: toOnnxModel(graph, [{ name: "logits", tensor: logits }]), tensors };
}

function lossGraph(config: ModelConfig, shape: GraphShape, withGradients: boolean): BuiltGraph {
  const { graph, tensors, params, logits } = forwardGraph(config, shape);
  const targets = graph.input("targets", [shape.batchSize, shape.seqLen], "int64");
  const lossMask = graph.input("loss_mask", [shape.batchSize, shape.seqLen], graph.floatType);
  const loss = maskedCrossEntropy(logits, targets, lossMask);
  const grads = withGradients ? gradients(loss, params) : [];
  const outputs = [
    { name: "loss", tensor: loss },
    ...grads.map((g, i) => ({ name: gradName((params[i] as Tensor).name), tensor: g })),
  ];
  return { onnx: toOnnxModel(graph, outputs), tensors };
}

/** Inputs: parameters, input_ids int64 [B, T], targets int64 [B, T], loss_mask float [B, T].
 * Outputs: loss (masked mean cross-entropy, scalar) and grad.<name> for every parameter. */
export const buildTrainingGraph = (config: ModelConfig, shape: GraphShape): BuiltGraph =>
  lossGraph(config, shape, true);

/** The training graph's inputs and loss, without gradients (evaluation). */
export const buildLossGraph = (config: ModelConfig, shape: GraphShape): BuiltGraph =>
  lossGraph(config, shape, false);

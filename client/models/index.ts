// Entry point to the model families: config.json → typed config → tensor list, initial weights, forward graph.
import type { Tensor } from "../engine/graph.ts";
import { asObject, UnknownArchitectureError } from "./config.ts";
import type { InitRule, ModelOutput, ParamLookup, TensorSpec } from "./family.ts";
import { type Gpt2Config, gpt2InitRule, gpt2Output, gpt2Tensors, parseGpt2Config } from "./gpt2.ts";
import { type LlamaConfig, llamaInitRule, llamaOutput, llamaTensors, parseLlamaConfig } from "./llama.ts";

export type { InitRule, ModelOutput, ParamLookup, TensorSpec } from "./family.ts";
export type { Gpt2Config } from "./gpt2.ts";
export type { LlamaConfig } from "./llama.ts";
export type ModelConfig = Gpt2Config | LlamaConfig;

const ARCHITECTURES: Record<string, ModelConfig["modelType"]> = {
  GPT2LMHeadModel: "gpt2",
  LlamaForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
};
const MODEL_TYPES = new Set<string>(Object.values(ARCHITECTURES));

/** Parses and validates a Hugging Face config.json object. model_type decides the family; architectures, when
 * present, must name the same one. */
export function parseModelConfig(json: unknown): ModelConfig {
  const obj = asObject(json);
  const expected = `expected model_type one of ${[...MODEL_TYPES].join(", ")}`;
  const architectures = obj.architectures;
  const fromArchitecture = Array.isArray(architectures) ? ARCHITECTURES[String(architectures[0])] : undefined;
  if (Array.isArray(architectures) && !fromArchitecture) {
    throw new UnknownArchitectureError(
      `unknown architecture ${JSON.stringify(architectures[0])}; expected one of ${Object.keys(ARCHITECTURES).join(", ")}`,
      "architectures",
    );
  }
  const modelType = obj.model_type ?? fromArchitecture;
  if (typeof modelType !== "string" || !MODEL_TYPES.has(modelType)) {
    throw new UnknownArchitectureError(
      `unknown model_type ${JSON.stringify(modelType)}; ${expected}`,
      "model_type",
    );
  }
  if (fromArchitecture && fromArchitecture !== modelType) {
    throw new UnknownArchitectureError(
      `architectures ${JSON.stringify(architectures)} does not match model_type ${JSON.stringify(modelType)}`,
      "architectures",
    );
  }
  return modelType === "gpt2"
    ? parseGpt2Config(obj)
    : parseLlamaConfig(obj, modelType as LlamaConfig["modelType"]);
}

/** Every parameter tensor of the model, in a fixed order (Hugging Face names). */
export function modelTensors(c: ModelConfig): TensorSpec[] {
  return c.modelType === "gpt2" ? gpt2Tensors(c) : llamaTensors(c);
}

/** How many numbers the model's parameters hold. */
export const parameterCount = (c: ModelConfig): number =>
  modelTensors(c).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);

export function initRule(c: ModelConfig, name: string): InitRule {
  return c.modelType === "gpt2" ? gpt2InitRule(name, c) : llamaInitRule(name, c);
}

/** Appends the model's forward pass up to its output head to the graph of `ids` ([B, T] int64). */
export function modelOutput(c: ModelConfig, params: ParamLookup, ids: Tensor): ModelOutput {
  return c.modelType === "gpt2" ? gpt2Output(c, params, ids) : llamaOutput(c, params, ids);
}

// What every model family provides, and the types shared between families, the engine and the trainer.
import type { Tensor } from "../engine/graph.ts";

/** One parameter tensor: Hugging Face name and shape; modelTensors() lists them in the order buildPlan consumes. */
export type { TensorSpec } from "../../core/plan.ts";

/** How a freshly created parameter is filled. */
export type InitRule = { kind: "zeros" } | { kind: "ones" } | { kind: "normal"; std: number };

/** Resolves a parameter name to its graph tensor. */
export type ParamLookup = (name: string) => Tensor;

/** A model's forward pass up to its output head: logits are `hidden` · `head`ᵀ. */
export interface ModelOutput {
  /** Final hidden states [B, T, d], after the last norm. */
  hidden: Tensor;
  /** Output head weight [vocab, d] (nn.Linear layout; the token embedding when tied). */
  head: Tensor;
}

/**
 * FedKSeed's seed pool in core's gaussian basis: the run plan's tensors as one block of all P parameters with
 * k = K, so direction z_s (s < K) is basis s of that block and Σ_s c_s z_s is `reconstruct` on this plan.
 */
import { InvalidArgumentError } from "./errors.ts";
import type { Plan } from "./plan.ts";

export function seedPoolPlan(runPlan: Plan, poolSize: number): Plan {
  if (!Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > runPlan.totalParams) {
    throw new InvalidArgumentError(
      `seed pool size is ${poolSize}; expected an integer in [1, ${runPlan.totalParams}] (the parameters)`,
    );
  }
  return {
    version: 1,
    totalParams: runPlan.totalParams,
    totalK: poolSize,
    tensors: runPlan.tensors.map((t) => ({ ...t, shape: [...t.shape] })),
    blocks: [
      { start: 0, size: runPlan.totalParams, k: poolSize, tensors: runPlan.tensors.map((t) => t.name) },
    ],
  };
}

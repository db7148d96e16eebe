// What each basis family costs at the benchmark's K on the benchmark's model, beside its accuracy: the client's
// projection of Δ and the server's reconstruction, through core's kernels on one thread (median of 3 runs).
import { buildPlan, type TensorSpec } from "../../core/plan.ts";
import { type Family, project, reconstruct } from "../../core/projection.ts";
import { medianSeconds } from "../machine.ts";

export interface BasisCost {
  projectSeconds: number;
  reconstructSeconds: number;
}

export async function basisCost(tensors: readonly TensorSpec[], totalK: number, family: Family) {
  const plan = buildPlan(tensors, { totalK });
  const delta = Float32Array.from({ length: plan.totalParams }, (_, i) => Math.sin(i) * 1e-3);
  const weights = new Float32Array(plan.totalParams);
  const seed = 0x5eedn;
  const coefficients = project(delta, seed, plan, family);
  return {
    projectSeconds: await medianSeconds(3, () => project(delta, seed, plan, family)),
    reconstructSeconds: await medianSeconds(3, () =>
      reconstruct(weights, coefficients, seed, plan, family, 1),
    ),
  } satisfies BasisCost;
}

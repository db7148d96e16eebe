import { describe, expect, it } from "vitest";
import { buildPlan, FAMILIES, type Family, project, reconstruct } from "../../core/index.ts";

// Statistical properties of each family's estimator Δ̃ = R(P(Δ)), over many independent round seeds.
// One block of d = 64 parameters with k = 16 coefficients; Δ is fixed and deliberately non-uniform.
const d = 64;
const k = 16;
const seeds = 3000;
const plan = buildPlan([{ name: "w", shape: [d] }], { totalK: k });
const delta = Float32Array.from({ length: d }, (_, j) => Math.sin(j * 1.7) * (1 + (j % 5)));
const normSquared = delta.reduce((s, x) => s + x * x, 0);

/** Δ̃ for one seed: reconstructing into zeros with scale −1 leaves exactly the estimate (rounded to float32). */
function estimate(family: Family, seed: bigint): Float32Array {
  const out = new Float32Array(d);
  reconstruct(out, project(delta, seed, plan, family), seed, plan, family, -1);
  return out;
}

// E‖Δ̃ − Δ‖² = (d + 1)/k·‖Δ‖² for Gaussian bases (E‖vvᵀΔ‖² = (d + 2)‖Δ‖²), (d − 1)/k·‖Δ‖² for Rademacher
// bases (‖vvᵀΔ‖² = d·⟨v,Δ⟩²) and for a count sketch (each other coordinate collides with probability 1/k).
const theoreticalMse: Record<Family, number> = {
  gaussian: ((d + 1) / k) * normSquared,
  rademacher: ((d - 1) / k) * normSquared,
  sketch: ((d - 1) / k) * normSquared,
};

describe.each(FAMILIES)("%s estimator", (family) => {
  const sum = new Float64Array(d);
  const sumSquares = new Float64Array(d);
  let squaredError = 0;
  for (let s = 0; s < seeds; s++) {
    const e = estimate(family, (0x9e3779b97f4a7c15n * BigInt(s + 1)) & 0xffffffffffffffffn);
    for (let j = 0; j < d; j++) {
      const x = e[j] as number;
      sum[j] = (sum[j] as number) + x;
      sumSquares[j] = (sumSquares[j] as number) + x * x;
      squaredError += (x - (delta[j] as number)) ** 2;
    }
  }

  it("is unbiased: every coordinate's mean over seeds is within 4 standard errors of Δ", () => {
    for (let j = 0; j < d; j++) {
      const mean = (sum[j] as number) / seeds;
      const variance = (sumSquares[j] as number) / seeds - mean * mean;
      const standardError = Math.sqrt(variance / seeds);
      expect(Math.abs(mean - (delta[j] as number))).toBeLessThanOrEqual(4 * standardError);
    }
  });

  it("has the theoretical mean squared error, within 10%", () => {
    const mse = squaredError / seeds;
    expect(Math.abs(mse / theoreticalMse[family] - 1)).toBeLessThan(0.1);
  });
});

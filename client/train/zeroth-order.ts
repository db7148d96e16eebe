/**
 * FedKSeed's local training (Qin et al., ICML 2024, arXiv 2312.06353): T zeroth-order steps, each along one
 * direction z_s drawn uniformly from the run's pool of K seeds. The two-point estimate
 * g = (L(w + εz_s) − L(w − εz_s)) / 2ε ≈ ⟨∇L(w), z_s⟩ needs two forward passes and no gradient; the step is
 * w ← w − η·g·z_s. The client records (s, g) per step: that is its whole upload.
 *
 * Every application of z_s is core's `reconstruct` with a one-hot coefficient on the pool plan (one pass over P,
 * zero coefficients cost nothing), so z_s here has exactly the bytes the server and replaying clients generate.
 * w ± εz_s go into scratch copies of w: perturbing w in place and undoing it would not restore w in float32.
 */
import { createHash } from "node:crypto";
import type { Plan } from "../../core/plan.ts";
import { reconstruct } from "../../core/projection.ts";
import type { SeedPair } from "../../core/seed-pool.ts";
import type { Batch } from "../data/batches.ts";
import { SeededRandom } from "../data/random.ts";
import { tensorViews } from "../sync/weights.ts";
import type { GradientSource } from "./loop.ts";
import { type ParamRecord, TrainingError } from "./params.ts";

export interface ZerothOrderOptions {
  steps: number;
  /** η: the step along z_s is −η·g. */
  learningRate: number;
  /** ε of the two-point estimate. */
  perturbation: number;
  pool: { seed: bigint; plan: Plan };
  /** Draws the seed index of each step. */
  random: SeededRandom;
  onStep?: (report: ZerothOrderStep) => void;
}

export interface ZerothOrderStep extends SeedPair {
  step: number;
  /** (L(w + εz) + L(w − εz)) / 2: the loss at w up to O(ε²), without a third forward pass. */
  loss: number;
}

/**
 * The step-index generator of one client in one round: seeded by SHA-256 of the round seed and the client's
 * identity, so clients of a round draw different directions and a round's draws never repeat the last round's.
 */
export function clientStepRandom(roundSeed: string, client: string): SeededRandom {
  const digest = createHash("sha256").update(`ferret/fedkseed-steps/v1\0${roundSeed}\0${client}`).digest();
  return new SeededRandom(digest.readUInt32BE(0), digest.readUInt32BE(4));
}

function checkOptions({ steps, learningRate, perturbation }: ZerothOrderOptions): void {
  if (!Number.isSafeInteger(steps) || steps < 0) {
    throw new TrainingError("BAD_OPTION", `steps must be an integer ≥ 0, got ${steps}`);
  }
  if (!Number.isFinite(learningRate)) {
    throw new TrainingError("BAD_OPTION", `learning rate must be finite, got ${learningRate}`);
  }
  if (!Number.isFinite(perturbation) || perturbation <= 0) {
    throw new TrainingError(
      "BAD_OPTION",
      `perturbation ε must be a positive finite number, got ${perturbation}`,
    );
  }
}

/**
 * Runs T zeroth-order steps on `values` (flat, in `runPlan` order) in place, one batch per step, and returns the
 * (seed index, gradient) pairs in step order. g is rounded to float32 before the update, so the local step moves
 * w by exactly what the uploaded pair says.
 */
export async function zerothOrderSteps(
  values: Float32Array,
  runPlan: Plan,
  source: Pick<GradientSource, "loss">,
  batches: Iterator<Batch>,
  options: ZerothOrderOptions,
): Promise<ZerothOrderStep[]> {
  checkOptions(options);
  const { pool, perturbation: epsilon, learningRate } = options;
  const poolSize = pool.plan.totalK;
  // w + εz and w − εz in turn, in one scratch copy: the two losses are computed one after the other.
  const perturbed = new Float32Array(values.length);
  const record: ParamRecord = Object.fromEntries(
    [...tensorViews(runPlan, perturbed)].map(([name, view]) => [name, view.data]),
  );
  const oneHot = new Float32Array(poolSize);
  /** w ← f32(w − scale·c·z_s), through the same core call the server's reconstruction makes. */
  const move = (w: Float32Array, index: number, c: number, scale: number) => {
    oneHot[index] = c;
    reconstruct(w, oneHot, pool.seed, pool.plan, "gaussian", scale);
    oneHot[index] = 0;
  };
  const steps: ZerothOrderStep[] = [];
  for (let step = 0; step < options.steps; step++) {
    const next = batches.next();
    if (next.done) throw new TrainingError("OUT_OF_BATCHES", `batches ran out at step ${step}`);
    const index = options.random.nextInt(poolSize);
    perturbed.set(values);
    move(perturbed, index, 1, -epsilon);
    const up = await source.loss(record, next.value);
    perturbed.set(values);
    move(perturbed, index, 1, epsilon);
    const down = await source.loss(record, next.value);
    if (!Number.isFinite(up) || !Number.isFinite(down)) {
      throw new TrainingError("NON_FINITE_LOSS", `loss is ${up} / ${down} at w ± εz at step ${step}`);
    }
    const gradient = Math.fround((up - down) / (2 * epsilon));
    move(values, index, gradient, learningRate);
    const report = { step, index, gradient, loss: (up + down) / 2 };
    steps.push(report);
    options.onStep?.(report);
  }
  return steps;
}

// The run config schema: what an operator may ask for, checked whole before anything is stored.
import { z } from "zod";
import { buildPlan, type Plan, parsePlan, type TensorSpec } from "../../core/plan.ts";
import { seedPoolPlan } from "../../core/seed-pool.ts";
import { BadRequest } from "../errors.ts";
import type { RunConfig } from "../storage/records.ts";

/** Coefficients travel in one DynamoDB item per upload (400 KB limit), so K is capped below that. */
export const MAX_TOTAL_K = 65_536;
/** Bodies larger than this are refused before they are read as numbers. */
export const MAX_UPLOAD_BYTES = MAX_TOTAL_K * 4;
/** FedKSeed: most (seed index, gradient) pairs one upload may carry, i.e. most zeroth-order steps per round. */
export const MAX_SEED_PAIRS = 8192;
/**
 * A fedavg commit streams the client's 4P-byte update through the upload function (length, finiteness and SHA-256
 * checks, then a copy to the committed key) inside the HTTP API's 30 s limit; at a few tens of MB/s that holds
 * about 200 MB. FedAvg is the baseline the benchmark compares against, so larger models are refused rather than
 * left to time out.
 */
export const MAX_FEDAVG_PARAMS = 50_000_000;
/**
 * A round's record lists the clients it selected (36-byte ids) in one DynamoDB item, whose limit is 400 KB: at
 * 11,080 the write is refused, and the run could never open a round again.
 */
export const MAX_CLIENTS_PER_ROUND = 5_000;
export const DEFAULT_ZEROTH_ORDER = { seedPool: 1024, perturbation: 1e-3 };
/**
 * Ferret's family when the operator names none. `npm run bench:convergence` (bench/results/convergence.md): at
 * equal K the three families end within run-to-run noise of each other, sketch reached FedKSeed's final loss in the
 * fewest rounds in every run, and its kernels cost O(d) whatever K is (3 ms against 137 ms for gaussian there).
 */
export const DEFAULT_BASIS = "sketch";

const tensor = z.object({ name: z.string().min(1), shape: z.array(z.number().int().positive()).min(1) });

export const runConfigSchema = z
  .object({
    strategy: z.enum(["ferret", "fedavg", "fedkseed"]).default("ferret"),
    basis: z.enum(["gaussian", "rademacher", "sketch"]).optional(),
    zerothOrder: z
      .object({
        seedPool: z.number().int().positive().max(MAX_TOTAL_K),
        perturbation: z.number().positive().finite(),
      })
      .strict()
      .optional(),
    plan: z.unknown().optional(),
    tensors: z.array(tensor).min(1).optional(),
    totalK: z.number().int().positive().max(MAX_TOTAL_K).optional(),
    targetBlockSize: z.number().int().positive().optional(),
    learningRate: z.number().positive().finite(),
    clientsPerRound: z.number().int().positive().max(MAX_CLIENTS_PER_ROUND),
    quorum: z.number().int().positive(),
    minUploads: z.number().int().positive(),
    deadlineSeconds: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600),
    weighting: z.enum(["examples", "equal"]).default("examples"),
    // Optional limits on each upload (upload-limits.ts): the L2 norm of its coefficients (fedkseed: of its dense
    // pool coefficients; fedavg: of its update Δ), and the example count it claims.
    maxUploadNorm: z.number().positive().finite().optional(),
    maxExamples: z.number().int().positive().optional(),
    localSteps: z
      .object({
        steps: z.number().int().positive(),
        learningRate: z.number().positive().finite(),
        batchSize: z.number().int().positive(),
      })
      .default({ steps: 10, learningRate: 1e-4, batchSize: 8 }),
  })
  .strict()
  .refine((c) => c.minUploads <= c.quorum, {
    message: "minUploads must not exceed quorum",
    path: ["minUploads"],
  })
  .refine((c) => c.quorum <= c.clientsPerRound, {
    message: "quorum must not exceed clientsPerRound",
    path: ["quorum"],
  })
  .refine((c) => (c.plan === undefined) !== (c.tensors === undefined), {
    message: "give either a block plan or tensors (+ totalK for ferret), not both or neither",
    path: ["plan"],
  })
  .refine((c) => c.zerothOrder === undefined || c.strategy === "fedkseed", {
    message: "zerothOrder applies only to strategy fedkseed",
    path: ["zerothOrder"],
  })
  .refine((c) => c.strategy !== "fedkseed" || c.basis === undefined || c.basis === "gaussian", {
    message: "fedkseed always uses gaussian directions; leave basis out or set it to gaussian",
    path: ["basis"],
  })
  .refine((c) => c.strategy !== "fedkseed" || c.localSteps.steps <= MAX_SEED_PAIRS, {
    message: `fedkseed uploads one pair per zeroth-order step; at most ${MAX_SEED_PAIRS} steps`,
    path: ["localSteps", "steps"],
  });

export type RunConfigInput = z.input<typeof runConfigSchema>;

/**
 * The block plan defines shards and manifest hashes for every strategy, but only ferret uses its k_b. For fedavg
 * and fedkseed, tensors alone are enough: each block then gets one coefficient (buildPlan is called once to learn
 * the block count, then again with exactly that many).
 */
function planOf(tensors: TensorSpec[], totalK: number | undefined, targetBlockSize: number | undefined) {
  const options = targetBlockSize ? { targetBlockSize } : {};
  if (totalK !== undefined) return buildPlan(tensors, { totalK, ...options });
  const blocks = buildPlan(tensors, { totalK: tensors.length, ...options }).blocks.length;
  return buildPlan(tensors, { totalK: blocks, ...options });
}

/** Resolves the plan (given, or built by core from tensors + totalK) and returns the stored config. */
export function resolveRunConfig(input: z.output<typeof runConfigSchema>): RunConfig {
  const {
    plan: givenPlan,
    tensors,
    totalK,
    targetBlockSize,
    zerothOrder,
    basis: givenBasis,
    ...given
  } = input;
  const basis = givenBasis ?? (given.strategy === "fedkseed" ? "gaussian" : DEFAULT_BASIS);
  const rest = { ...given, basis };
  let plan: Plan;
  try {
    if (givenPlan !== undefined) plan = parsePlan(givenPlan);
    else if (totalK === undefined && rest.strategy === "ferret")
      throw new Error("totalK is required with tensors for strategy ferret");
    else plan = planOf(tensors ?? [], totalK, targetBlockSize);
  } catch (error) {
    throw new BadRequest("invalid_plan", `invalid block plan: ${(error as Error).message}`);
  }
  if (plan.totalK > MAX_TOTAL_K) {
    throw new BadRequest(
      "invalid_plan",
      `plan has ${plan.totalK} coefficients; at most ${MAX_TOTAL_K} are supported`,
    );
  }
  if (rest.strategy === "fedavg" && plan.totalParams > MAX_FEDAVG_PARAMS) {
    throw new BadRequest(
      "invalid_run_config",
      `the model has ${plan.totalParams} parameters; fedavg runs are limited to ${MAX_FEDAVG_PARAMS}`,
    );
  }
  if (rest.strategy !== "fedkseed") return { ...rest, plan };
  const settings = zerothOrder ?? DEFAULT_ZEROTH_ORDER;
  try {
    seedPoolPlan(plan, settings.seedPool);
  } catch (error) {
    throw new BadRequest("invalid_run_config", `zerothOrder.seedPool: ${(error as Error).message}`);
  }
  return { ...rest, plan, zerothOrder: { ...settings } };
}

// The run config schema: what an operator may ask for, checked whole before anything is stored.
import { z } from "zod";
import { buildPlan, parsePlan } from "../../core/plan.ts";
import { BadRequest } from "../errors.ts";
import type { RunConfig } from "../storage/records.ts";

/** Coefficients travel in one DynamoDB item per upload (400 KB limit), so K is capped below that. */
export const MAX_TOTAL_K = 65_536;
/** Bodies larger than this are refused before they are read as numbers. */
export const MAX_UPLOAD_BYTES = MAX_TOTAL_K * 4;

const tensor = z.object({ name: z.string().min(1), shape: z.array(z.number().int().positive()).min(1) });

export const runConfigSchema = z
  .object({
    basis: z.enum(["gaussian", "rademacher", "sketch"]).default("gaussian"),
    plan: z.unknown().optional(),
    tensors: z.array(tensor).min(1).optional(),
    totalK: z.number().int().positive().max(MAX_TOTAL_K).optional(),
    targetBlockSize: z.number().int().positive().optional(),
    learningRate: z.number().positive().finite(),
    clientsPerRound: z.number().int().positive(),
    quorum: z.number().int().positive(),
    minUploads: z.number().int().positive(),
    deadlineSeconds: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600),
    weighting: z.enum(["examples", "equal"]).default("examples"),
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
    message: "give either a block plan or tensors + totalK, not both or neither",
    path: ["plan"],
  });

export type RunConfigInput = z.input<typeof runConfigSchema>;

/** Resolves the plan (given, or built by core from tensors + totalK) and returns the stored config. */
export function resolveRunConfig(input: z.output<typeof runConfigSchema>): RunConfig {
  const { plan: givenPlan, tensors, totalK, targetBlockSize, ...rest } = input;
  let plan: RunConfig["plan"];
  try {
    if (givenPlan !== undefined) plan = parsePlan(givenPlan);
    else if (totalK === undefined) throw new Error("totalK is required with tensors");
    else plan = buildPlan(tensors ?? [], { totalK, ...(targetBlockSize ? { targetBlockSize } : {}) });
  } catch (error) {
    throw new BadRequest("invalid_plan", `invalid block plan: ${(error as Error).message}`);
  }
  if (plan.totalK > MAX_TOTAL_K) {
    throw new BadRequest(
      "invalid_plan",
      `plan has ${plan.totalK} coefficients; at most ${MAX_TOTAL_K} are supported`,
    );
  }
  return { ...rest, plan };
}

/**
 * Projection (client side: Δ → K coefficients) and reconstruction (server and replaying clients:
 * w ← w − scale·Δ̃), for the whole model or any element range of it. The math is specified in reference.ts;
 * the work runs in the WebAssembly kernels on the calling thread. pool.ts runs the same work across threads.
 */

import { assertFinite, assertLength, InvalidArgumentError, UnknownFamilyError } from "./errors.ts";
import type { ProjectItem, ReconstructItem } from "./kernels/runtime.mjs";
import { compileKernels, Kernels, runProjection, runReconstruction } from "./kernels/runtime.mjs";
import { seedKey } from "./philox.ts";
import type { Plan, PlanBlock } from "./plan.ts";
import { FAMILIES, type Family } from "./reference.ts";
import { assertSeed } from "./seed.ts";

export type { Family };

export function assertFamily(family: string): asserts family is Family {
  if (!(FAMILIES as readonly string[]).includes(family)) {
    throw new UnknownFamilyError(
      `basis family ${JSON.stringify(family)} is unknown; expected one of ${FAMILIES.join(", ")}`,
    );
  }
}

let compiled: unknown;
let mainThreadKernels: Kernels | undefined;

/** The compiled kernels module, compiled once per process (workers receive it by message). */
export function kernelModule(): unknown {
  compiled ??= compileKernels();
  return compiled;
}

function kernels(): Kernels {
  mainThreadKernels ??= new Kernels(kernelModule());
  return mainThreadKernels;
}

/** Where each block's coefficients start in the concatenated coefficient vector. */
export function coefficientOffsets(plan: Plan): number[] {
  let at = 0;
  return plan.blocks.map((b) => {
    const start = at;
    at += b.k;
    return start;
  });
}

export interface BlockSlice {
  blockIndex: number;
  block: PlanBlock;
  /** Block-local index of the slice's first element. */
  j0: number;
  /** Index of the slice's first element within the caller's range. */
  at: number;
  length: number;
}

/** The pieces of blocks that elements [offset, offset + length) of the flat vector cover, in order. */
export function blockSlices(plan: Plan, offset: number, length: number): BlockSlice[] {
  const end = offset + length;
  const slices: BlockSlice[] = [];
  for (const [blockIndex, block] of plan.blocks.entries()) {
    const from = Math.max(offset, block.start);
    const to = Math.min(end, block.start + block.size);
    if (from < to)
      slices.push({ blockIndex, block, j0: from - block.start, at: from - offset, length: to - from });
  }
  return slices;
}

export interface ReconstructionArgs {
  plan: Plan;
  seed: bigint;
  family: Family;
  coefficients: Float32Array;
  scale: number;
  /** Index in the flat parameter vector of weights[0]. */
  offset: number;
  weights: Float32Array;
}

/** Checks every argument of a reconstruction; throws a typed error naming the first bad one. */
export function validateReconstruction(args: ReconstructionArgs): void {
  const { plan, seed, family, coefficients, scale, offset, weights } = args;
  assertFamily(family);
  assertSeed(seed);
  assertLength(coefficients.length, plan.totalK, "coefficients");
  assertFinite(coefficients, "coefficients");
  if (!Number.isFinite(scale)) throw new InvalidArgumentError(`scale is ${scale}; expected a finite number`);
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + weights.length > plan.totalParams) {
    throw new InvalidArgumentError(
      `range [${offset}, ${offset + weights.length}) is outside the model; expected within [0, ${plan.totalParams})`,
    );
  }
}

/**
 * weights ← weights − scale·Δ̃ over elements [offset, offset + weights.length) of the flat parameter vector.
 * Any split of the model into ranges gives the same bytes as one call over the whole model.
 */
export function reconstructRange(
  weights: Float32Array,
  offset: number,
  coefficients: Float32Array,
  seed: bigint,
  plan: Plan,
  family: Family,
  scale: number,
): void {
  validateReconstruction({ plan, seed, family, coefficients, scale, offset, weights });
  const items = reconstructionItems(
    { plan, seed, family, coefficients, scale, offset, weights },
    blockSlices(plan, offset, weights.length),
  );
  runReconstruction(kernels(), items, coefficients, weights, scale);
}

/** Kernel work items for the given slices of a validated reconstruction. */
export function reconstructionItems(args: ReconstructionArgs, slices: BlockSlice[]): ReconstructItem[] {
  const [key0, key1] = seedKey(args.seed);
  const offsets = coefficientOffsets(args.plan);
  return slices.map((s) => ({
    family: args.family,
    key0,
    key1,
    block: s.blockIndex,
    gammaAt: offsets[s.blockIndex] as number,
    kb: s.block.k,
    j0: s.j0,
    at: s.at,
    length: s.length,
  }));
}

/** The whole model: weights.length must equal plan.totalParams. */
export function reconstruct(
  weights: Float32Array,
  coefficients: Float32Array,
  seed: bigint,
  plan: Plan,
  family: Family,
  scale: number,
): void {
  assertLength(weights.length, plan.totalParams, "weights");
  reconstructRange(weights, 0, coefficients, seed, plan, family, scale);
}

/** Checks the arguments of a projection; throws a typed error naming the first bad one. */
export function validateProjection(delta: Float32Array, seed: bigint, plan: Plan, family: Family): void {
  assertFamily(family);
  assertSeed(seed);
  assertLength(delta.length, plan.totalParams, "delta");
  assertFinite(delta, "delta");
}

/**
 * Kernel work items of a projection, each block cut into up to `parts` pieces of its coefficient range (whole
 * sign-byte groups for rademacher; a sketch is never cut, its buckets share every element).
 */
export function projectionItems(plan: Plan, seed: bigint, family: Family, parts: number): ProjectItem[] {
  const [key0, key1] = seedKey(seed);
  const offsets = coefficientOffsets(plan);
  const items: ProjectItem[] = [];
  for (const [blockIndex, block] of plan.blocks.entries()) {
    const unit = family === "rademacher" ? 8 : 1;
    const units = Math.ceil(block.k / unit);
    const pieces = family === "sketch" ? 1 : Math.min(parts, units);
    for (let p = 0; p < pieces; p++) {
      const from = Math.floor((units * p) / pieces) * unit;
      const to = Math.min(block.k, Math.floor((units * (p + 1)) / pieces) * unit);
      const outAt = (offsets[blockIndex] as number) + from;
      items.push({
        family,
        key0,
        key1,
        block: blockIndex,
        kb: block.k,
        start: block.start,
        size: block.size,
        from,
        to,
        outAt,
      });
    }
  }
  return items;
}

/** The K coefficients of an update Δ (= w_round − w_local), blocks concatenated in plan order. */
export function project(delta: Float32Array, seed: bigint, plan: Plan, family: Family): Float32Array {
  validateProjection(delta, seed, plan, family);
  const out = new Float32Array(plan.totalK);
  runProjection(kernels(), projectionItems(plan, seed, family, 1), delta, out);
  return out;
}

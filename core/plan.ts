/**
 * Block plans: how the flat parameter vector is cut into blocks and how many coefficients each block gets.
 *
 * The flat vector is the tensors concatenated in the given order (row-major). A tensor at least as large as the
 * target block size is a block of its own; runs of consecutive smaller tensors are packed into one block while
 * the pack stays within the target (default 0.9 × the median tensor size, as in the reference implementation).
 * The total budget K is split proportionally to block size with largest remainders, each block getting at least
 * `minK` (or its size, if smaller) and never more than its size. The plan is plain JSON: the server computes it
 * once per run and hands it to every client.
 */
import { InvalidArgumentError, PlanError } from "./errors.ts";

export interface TensorSpec {
  name: string;
  shape: number[];
}

export interface PlanTensor extends TensorSpec {
  /** Index of the tensor's first element in the flat parameter vector. */
  offset: number;
}

export interface PlanBlock {
  /** First element of the block in the flat parameter vector. */
  start: number;
  size: number;
  /** Number of coefficients (bases, or sketch buckets) of this block. */
  k: number;
  tensors: string[];
}

export interface Plan {
  version: 1;
  totalParams: number;
  totalK: number;
  tensors: PlanTensor[];
  blocks: PlanBlock[];
}

export interface PlanOptions {
  totalK: number;
  /** Largest size up to which small tensors are packed together; default 0.9 × median tensor size. */
  targetBlockSize?: number;
  /** Fewest coefficients a block gets (capped at its size); default 1. */
  minK?: number;
}

/** Largest block the kernels accept: element indices are 32-bit counter words. */
export const MAX_BLOCK_SIZE = 2 ** 32 - 16;

export function tensorSize(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

function validateTensors(tensors: readonly TensorSpec[]): void {
  if (tensors.length === 0) throw new PlanError("tensor list is empty; expected at least one tensor");
  const seen = new Set<string>();
  for (const [i, t] of tensors.entries()) {
    if (typeof t.name !== "string" || t.name === "") {
      throw new PlanError(`tensor #${i} has no name; expected a non-empty string`);
    }
    if (seen.has(t.name)) throw new PlanError(`tensor "${t.name}" appears twice; expected unique names`);
    seen.add(t.name);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) {
      throw new PlanError(
        `tensor "${t.name}" has shape ${JSON.stringify(t.shape)}; expected an array of positive integers`,
      );
    }
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function packBlocks(tensors: readonly PlanTensor[], target: number): Omit<PlanBlock, "k">[] {
  const blocks: Omit<PlanBlock, "k">[] = [];
  let pack: Omit<PlanBlock, "k"> | undefined;
  const flush = () => {
    if (pack) blocks.push(pack);
    pack = undefined;
  };
  for (const t of tensors) {
    const size = tensorSize(t.shape);
    if (size >= target) {
      flush();
      blocks.push({ start: t.offset, size, tensors: [t.name] });
      continue;
    }
    if (pack && pack.size + size > target) flush();
    if (pack) {
      pack.size += size;
      pack.tensors.push(t.name);
    } else {
      pack = { start: t.offset, size, tensors: [t.name] };
    }
  }
  flush();
  return blocks;
}

/** Splits `totalK` over blocks ∝ size with largest remainders, within [min(minK, size), size]. */
function allocateK(sizes: readonly number[], totalK: number, minK: number): number[] {
  const totalSize = sizes.reduce((a, b) => a + b, 0);
  const floors = sizes.map((s) => Math.min(minK, s));
  const least = floors.reduce((a, b) => a + b, 0);
  if (totalK < least) {
    throw new PlanError(`totalK ${totalK} is below the ${least} coefficients the minimum per block requires`);
  }
  if (totalK > totalSize) {
    throw new PlanError(
      `totalK ${totalK} exceeds the ${totalSize} parameters; expected at most one per parameter`,
    );
  }
  const ideal = sizes.map((s) => (totalK * s) / totalSize);
  const k = sizes.map((s, b) => Math.min(s, Math.max(floors[b] as number, Math.floor(ideal[b] as number))));
  let sum = k.reduce((a, b) => a + b, 0);
  // Each step moves one coefficient to/from the block furthest from its ideal share; ties go to the lower index.
  while (sum !== totalK) {
    const grow = sum < totalK;
    let best = -1;
    let bestGap = Number.NEGATIVE_INFINITY;
    for (let b = 0; b < sizes.length; b++) {
      const kb = k[b] as number;
      const movable = grow ? kb < (sizes[b] as number) : kb > (floors[b] as number);
      const gap = grow ? (ideal[b] as number) - kb : kb - (ideal[b] as number);
      if (movable && gap > bestGap) {
        best = b;
        bestGap = gap;
      }
    }
    k[best] = (k[best] as number) + (grow ? 1 : -1);
    sum += grow ? 1 : -1;
  }
  return k;
}

export function buildPlan(tensors: readonly TensorSpec[], options: PlanOptions): Plan {
  validateTensors(tensors);
  const { totalK, minK = 1 } = options;
  if (!Number.isSafeInteger(totalK) || totalK < 1) {
    throw new InvalidArgumentError(`totalK is ${totalK}; expected a positive integer`);
  }
  if (!Number.isSafeInteger(minK) || minK < 1) {
    throw new InvalidArgumentError(`minK is ${minK}; expected a positive integer`);
  }
  let offset = 0;
  const planTensors: PlanTensor[] = tensors.map((t) => {
    const entry = { name: t.name, shape: [...t.shape], offset };
    offset += tensorSize(t.shape);
    return entry;
  });
  const target =
    options.targetBlockSize ?? Math.max(1, Math.floor(0.9 * median(tensors.map((t) => tensorSize(t.shape)))));
  if (!Number.isSafeInteger(target) || target < 1) {
    throw new InvalidArgumentError(`targetBlockSize is ${target}; expected a positive integer`);
  }
  const blocks = packBlocks(planTensors, target);
  const oversized = blocks.find((b) => b.size > MAX_BLOCK_SIZE);
  if (oversized) {
    throw new PlanError(
      `block of ${oversized.tensors.join(", ")} has ${oversized.size} elements; expected ≤ ${MAX_BLOCK_SIZE}`,
    );
  }
  const ks = allocateK(
    blocks.map((b) => b.size),
    totalK,
    minK,
  );
  return {
    version: 1,
    totalParams: offset,
    totalK,
    tensors: planTensors,
    blocks: blocks.map((b, i) => ({ ...b, k: ks[i] as number })),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field<T>(
  value: Record<string, unknown>,
  key: string,
  where: string,
  check: (v: unknown) => v is T,
  expected: string,
): T {
  const v = value[key];
  if (!check(v)) throw new PlanError(`${where}.${key} is ${JSON.stringify(v)}; expected ${expected}`);
  return v;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isNameList = (v: unknown): v is string[] => Array.isArray(v) && v.every((n) => typeof n === "string");
const isShape = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 1);

/**
 * Validates a plan received as JSON: every field present and typed, tensors contiguous, blocks contiguous and
 * covering the tensors in order, 1 ≤ k ≤ size for every block, Σk = totalK.
 */
export function parsePlan(json: unknown): Plan {
  if (!isRecord(json))
    throw new PlanError(
      "plan is not a JSON object; expected {version, totalParams, totalK, tensors, blocks}",
    );
  if (json.version !== 1) throw new PlanError(`plan.version is ${JSON.stringify(json.version)}; expected 1`);
  const totalParams = field(json, "totalParams", "plan", isCount, "a non-negative integer");
  const totalK = field(json, "totalK", "plan", isCount, "a non-negative integer");
  const rawTensors = field(json, "tensors", "plan", Array.isArray, "an array");
  const rawBlocks = field(json, "blocks", "plan", Array.isArray, "an array");
  let offset = 0;
  const tensors: PlanTensor[] = rawTensors.map((t: unknown, i: number) => {
    const where = `plan.tensors[${i}]`;
    if (!isRecord(t)) throw new PlanError(`${where} is not an object; expected {name, shape, offset}`);
    const name = field(
      t,
      "name",
      where,
      (v): v is string => typeof v === "string" && v !== "",
      "a non-empty string",
    );
    const shape = field(t, "shape", where, isShape, "an array of positive integers");
    const at = field(t, "offset", where, isCount, "a non-negative integer");
    if (at !== offset)
      throw new PlanError(`${where}.offset is ${at}; expected ${offset} (tensors are contiguous)`);
    offset += tensorSize(shape);
    return { name, shape, offset: at };
  });
  validateTensors(tensors);
  if (offset !== totalParams)
    throw new PlanError(`plan.totalParams is ${totalParams}; the tensors hold ${offset}`);
  const tensorOrder = tensors.map((t) => t.name);
  const sizeOf = new Map(tensors.map((t) => [t.name, tensorSize(t.shape)]));
  let start = 0;
  let sumK = 0;
  let nextTensor = 0;
  const blocks: PlanBlock[] = rawBlocks.map((b: unknown, i: number) => {
    const where = `plan.blocks[${i}]`;
    if (!isRecord(b)) throw new PlanError(`${where} is not an object; expected {start, size, k, tensors}`);
    const at = field(b, "start", where, isCount, "a non-negative integer");
    const size = field(b, "size", where, isCount, "a non-negative integer");
    const k = field(b, "k", where, isCount, "a non-negative integer");
    const names = field(b, "tensors", where, isNameList, "an array of tensor names");
    if (at !== start)
      throw new PlanError(`${where}.start is ${at}; expected ${start} (blocks are contiguous)`);
    const expectedNames = tensorOrder.slice(nextTensor, nextTensor + names.length);
    if (names.length === 0 || names.some((n, j) => n !== expectedNames[j])) {
      throw new PlanError(
        `${where}.tensors is ${JSON.stringify(names)}; expected the next tensors in order, starting ${JSON.stringify(tensorOrder[nextTensor])}`,
      );
    }
    const covered = names.reduce((s, n) => s + (sizeOf.get(n) as number), 0);
    if (covered !== size) throw new PlanError(`${where}.size is ${size}; its tensors hold ${covered}`);
    if (size > MAX_BLOCK_SIZE) throw new PlanError(`${where}.size is ${size}; expected ≤ ${MAX_BLOCK_SIZE}`);
    if (k < 1 || k > size)
      throw new PlanError(`${where}.k is ${k}; expected 1 ≤ k ≤ ${size} (the block size)`);
    nextTensor += names.length;
    start += size;
    sumK += k;
    return { start: at, size, k, tensors: [...names] };
  });
  if (start !== totalParams)
    throw new PlanError(`plan.blocks cover ${start} parameters; expected ${totalParams}`);
  if (sumK !== totalK) throw new PlanError(`plan.blocks have Σk = ${sumK}; expected totalK = ${totalK}`);
  return { version: 1, totalParams, totalK, tensors, blocks };
}

/** Throws PlanError unless `tensors` are exactly the plan's tensors (names, shapes, order). */
export function assertPlanMatches(plan: Plan, tensors: readonly TensorSpec[]): void {
  if (tensors.length !== plan.tensors.length) {
    throw new PlanError(`got ${tensors.length} tensors; the plan describes ${plan.tensors.length}`);
  }
  for (const [i, t] of tensors.entries()) {
    const p = plan.tensors[i] as PlanTensor;
    if (t.name !== p.name || t.shape.length !== p.shape.length || t.shape.some((d, j) => d !== p.shape[j])) {
      throw new PlanError(
        `tensor #${i} is "${t.name}" ${JSON.stringify(t.shape)}; the plan expects "${p.name}" ${JSON.stringify(p.shape)}`,
      );
    }
  }
}

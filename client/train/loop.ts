/**
 * The local trainer: T optimizer steps of gradient accumulation, clipping, a schedule and an optimizer,
 * around whatever computes loss and gradients (the ONNX training session in production).
 */
import type { Batch } from "../data/batches.ts";
import { clipByGlobalNorm, finiteGlobalNorm, GradientAccumulator, requireFiniteNorm } from "./gradients.ts";
import { checkLearningRate, type Optimizer } from "./optimizers.ts";
import { type ParamRecord, TrainingError } from "./params.ts";
import type { LrSchedule } from "./schedule.ts";

/**
 * What the trainer needs from an engine. `loss` is the mean negative log-likelihood over the batch's
 * positions with lossMask 1; `gradients` are d loss / d parameter, one array per parameter name, the same
 * lengths as `params`. Neither call may modify `params` or keep the returned arrays after the next call.
 */
export interface GradientSource {
  lossAndGradients(params: ParamRecord, batch: Batch): Promise<{ loss: number; gradients: ParamRecord }>;
  loss(params: ParamRecord, batch: Batch): Promise<number>;
}

export interface StepReport {
  step: number;
  /** Token-weighted mean loss over the step's micro-batches (before the update). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
  tokens: number;
}

export interface LocalTrainingOptions {
  /** Optimizer steps T. */
  steps: number;
  optimizer: Optimizer;
  schedule: LrSchedule;
  /** Micro-batches per optimizer step (default 1). */
  accumulation?: number;
  /** Clip the global gradient norm to this value (default: no clipping, but non-finite norms still stop). */
  clipNorm?: number;
  /** Called after every step, e.g. to print progress. */
  onStep?: (report: StepReport) => void;
}

function requireFiniteLoss(loss: number, step: number): void {
  if (!Number.isFinite(loss)) throw new TrainingError("NON_FINITE_LOSS", `loss is ${loss} at step ${step}`);
}

/** Runs T steps, updating `params` in place; `batches` must supply steps × accumulation batches. */
export async function trainLocal(
  params: ParamRecord,
  source: GradientSource,
  batches: Iterator<Batch>,
  options: LocalTrainingOptions,
): Promise<StepReport[]> {
  const accumulation = options.accumulation ?? 1;
  if (
    !Number.isInteger(options.steps) ||
    options.steps < 0 ||
    !Number.isInteger(accumulation) ||
    accumulation < 1
  ) {
    throw new TrainingError(
      "BAD_OPTION",
      `steps must be an integer ≥ 0 and accumulation ≥ 1, got ${options.steps} and ${accumulation}`,
    );
  }
  const reports: StepReport[] = [];
  const accumulator = new GradientAccumulator();
  for (let step = 0; step < options.steps; step++) {
    let lossSum = 0;
    let tokens = 0;
    for (let micro = 0; micro < accumulation; micro++) {
      const batch = nextBatch(batches, step, micro, options.steps * accumulation);
      const weight = maskedTokens(batch);
      const { loss, gradients } = await source.lossAndGradients(params, batch);
      requireFiniteLoss(loss, step);
      accumulator.add(gradients, weight);
      lossSum += loss * weight;
      tokens += weight;
    }
    const grads = accumulator.take();
    const gradNorm =
      options.clipNorm === undefined ? finiteGlobalNorm(grads) : clipByGlobalNorm(grads, options.clipNorm);
    const lr = options.schedule(step);
    options.optimizer.step(params, grads, lr);
    const report = { step, loss: lossSum / tokens, gradNorm, lr, tokens };
    reports.push(report);
    options.onStep?.(report);
  }
  return reports;
}

/**
 * An engine that keeps the weights between SGD steps itself (on a GPU, in the GPU's memory) and applies
 * w ← w − lr·g, with g clipped to the global norm the engine was made with. `begin` takes the starting weights,
 * `finish` writes the final ones back into them.
 */
export interface ResidentSgd {
  begin(params: ParamRecord): Promise<void>;
  step(batch: Batch, lr: number): Promise<{ loss: number; gradNorm: number }>;
  finish(): Promise<void>;
}

/**
 * T steps of plain SGD, one batch a step, on a ResidentSgd: trainLocal's steps with the update done where the
 * weights are. `params` change only once every step has succeeded.
 */
export async function trainResident(
  params: ParamRecord,
  engine: ResidentSgd,
  batches: Iterator<Batch>,
  options: Pick<LocalTrainingOptions, "steps" | "schedule" | "onStep">,
): Promise<StepReport[]> {
  if (!Number.isInteger(options.steps) || options.steps < 0) {
    throw new TrainingError("BAD_OPTION", `steps must be an integer ≥ 0, got ${options.steps}`);
  }
  await engine.begin(params);
  const reports: StepReport[] = [];
  for (let step = 0; step < options.steps; step++) {
    const batch = nextBatch(batches, step, 0, options.steps);
    const tokens = maskedTokens(batch);
    const lr = options.schedule(step);
    checkLearningRate(lr);
    const { loss, gradNorm } = await engine.step(batch, lr);
    requireFiniteLoss(loss, step);
    requireFiniteNorm(gradNorm, ` at step ${step}`);
    const report = { step, loss, gradNorm, lr, tokens };
    reports.push(report);
    options.onStep?.(report);
  }
  await engine.finish();
  return reports;
}

/** Token-weighted mean loss over batches (no gradients), for evaluation. */
export async function evaluateLoss(
  params: ParamRecord,
  source: GradientSource,
  batches: Iterable<Batch>,
): Promise<number> {
  let lossSum = 0;
  let tokens = 0;
  for (const batch of batches) {
    const weight = maskedTokens(batch);
    lossSum += (await source.loss(params, batch)) * weight;
    tokens += weight;
  }
  if (tokens === 0) throw new TrainingError("NO_EVAL_TOKENS", "evaluation batches hold no loss tokens");
  return lossSum / tokens;
}

function nextBatch(batches: Iterator<Batch>, step: number, micro: number, needed: number): Batch {
  const next = batches.next();
  if (next.done) {
    throw new TrainingError(
      "OUT_OF_BATCHES",
      `batches ran out at step ${step}, micro-batch ${micro}; ${needed} are needed`,
    );
  }
  return next.value;
}

function maskedTokens(batch: Batch): number {
  let n = 0;
  for (const m of batch.lossMask) n += m;
  if (n === 0) throw new TrainingError("EMPTY_BATCH", "a batch has no positions with lossMask 1");
  return n;
}

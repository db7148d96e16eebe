// Local training for one round: the engine's ONNX training session behind the trainer's GradientSource, the
// client's JSONL data packed into rows, T steps of SGD on a copy of the round's weights, and eval loss on rows
// held out from training.
import type { Plan } from "../../core/plan.ts";
import type { Batch } from "../data/batches.ts";
import { epochBatches } from "../data/batches.ts";
import { readJsonl } from "../data/jsonl.ts";
import { prepareSequences, type Sequence } from "../data/sequences.ts";
import { type Device, LossSession, TrainingSession } from "../engine/session.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { ModelConfig } from "../models/index.ts";
import { tensorViews } from "../sync/weights.ts";
import { evaluateLoss, type GradientSource, trainLocal } from "../train/loop.ts";
import { Sgd } from "../train/optimizers.ts";
import type { ParamRecord } from "../train/params.ts";
import { makeSchedule } from "../train/schedule.ts";

/** Rows held out for evaluation: this fraction of the client's rows, at least one and at most MAX_EVAL_ROWS. */
const EVAL_FRACTION = 0.1;
const MAX_EVAL_ROWS = 8;

export interface LocalData {
  train: Sequence[];
  eval: Sequence[];
}

export async function loadLocalData(path: string, tokenizer: Tokenizer, seqLen: number): Promise<LocalData> {
  const { sequences } = prepareSequences(await readJsonl(path), tokenizer, { seqLen, mode: "pack", seed: 0 });
  if (sequences.length < 2) {
    throw new RangeError(
      `${path} packs into ${sequences.length} row(s) of ${seqLen} tokens; at least 2 are needed (one to train, one to evaluate)`,
    );
  }
  const held = Math.min(MAX_EVAL_ROWS, Math.max(1, Math.round(sequences.length * EVAL_FRACTION)));
  return { train: sequences.slice(0, -held), eval: sequences.slice(-held) };
}

const toEngineBatch = (batch: Batch) => ({
  inputIds: BigInt64Array.from(batch.inputIds, (v) => BigInt(v)),
  targets: BigInt64Array.from(batch.targets, (v) => BigInt(v)),
  lossMask: batch.lossMask,
});

/**
 * The trainer's view of the engine: gradients from a training session (shaped for the local batch size), eval
 * loss from a loss-only session (shaped for the held-out rows). Parameters by name, shapes from the plan.
 */
class EngineSource implements GradientSource {
  constructor(
    private readonly training: TrainingSession,
    private readonly evaluation: LossSession,
    private readonly shapes: Map<string, number[]>,
  ) {}

  private params(record: ParamRecord) {
    return new Map(
      Object.entries(record).map(([name, data]) => [name, { shape: this.shapes.get(name) ?? [], data }]),
    );
  }

  async lossAndGradients(params: ParamRecord, batch: Batch) {
    const { loss, grads } = await this.training.step(this.params(params), toEngineBatch(batch));
    return { loss, gradients: Object.fromEntries(grads) as ParamRecord };
  }

  loss(params: ParamRecord, batch: Batch) {
    return this.evaluation.loss(this.params(params), toEngineBatch(batch));
  }
}

export interface TrainerOptions {
  device: Device;
  threads?: number;
  batchSize: number;
}

export interface RoundTraining {
  trainLoss: number;
  steps: number;
  tokens: number;
}

export class LocalTrainer {
  private constructor(
    private readonly plan: Plan,
    private readonly data: LocalData,
    private readonly engine: EngineSource,
    private readonly batchSize: number,
  ) {}

  static async create(config: ModelConfig, plan: Plan, data: LocalData, options: TrainerOptions) {
    const seqLen = data.train[0]?.inputIds.length ?? 0;
    const batchSize = Math.min(options.batchSize, data.train.length);
    const common = {
      seqLen,
      device: options.device,
      ...(options.threads ? { threads: options.threads } : {}),
    };
    const shapes = new Map(plan.tensors.map((t) => [t.name, t.shape]));
    const training = await TrainingSession.create(config, { ...common, batchSize });
    const evaluation = await LossSession.create(config, { ...common, batchSize: data.eval.length });
    return new LocalTrainer(plan, data, new EngineSource(training, evaluation, shapes), batchSize);
  }

  /** Rows of training data, the weight this client's update gets when the server weights by examples. */
  get examples(): number {
    return this.data.train.length;
  }

  private record(values: Float32Array): ParamRecord {
    return Object.fromEntries([...tensorViews(this.plan, values)].map(([name, view]) => [name, view.data]));
  }

  /** Mean loss of `values` over the held-out rows. */
  evalLoss(values: Float32Array): Promise<number> {
    const batch = epochBatches(this.data.eval, { batchSize: this.data.eval.length, seed: 0 }).next()
      .value as Batch;
    return evaluateLoss(this.record(values), this.engine, [batch]);
  }

  /** T steps of plain SGD (the paper's local optimizer) on `values`, in place; round-specific data order. */
  async trainSteps(
    values: Float32Array,
    round: number,
    steps: number,
    learningRate: number,
    onStep?: (step: number, loss: number) => void,
  ): Promise<RoundTraining> {
    const reports = await trainLocal(
      this.record(values),
      this.engine,
      epochBatches(this.data.train, { batchSize: this.batchSize, seed: round + 1 }),
      {
        steps,
        optimizer: new Sgd(),
        schedule: makeSchedule({ kind: "constant", lr: learningRate }),
        clipNorm: 1,
        onStep: (r) => onStep?.(r.step, r.loss),
      },
    );
    const tokens = reports.reduce((sum, r) => sum + r.tokens, 0);
    const trainLoss = reports.reduce((sum, r) => sum + r.loss * r.tokens, 0) / Math.max(tokens, 1);
    return { trainLoss, steps: reports.length, tokens };
  }
}

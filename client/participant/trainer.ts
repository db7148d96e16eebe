// Local training for one round: the engine's ONNX training session behind the trainer's GradientSource, the
// client's JSONL data packed into rows, T steps of SGD (ferret, fedavg) or of FedKSeed's zeroth-order method
// (forward passes only) on a copy of the round's weights, and eval loss on rows held out from training.
import type { Plan } from "../../core/plan.ts";
import { batches, epochBatches } from "../data/batches.ts";
import { readJsonl } from "../data/jsonl.ts";
import { prepareSequences, type Sequence } from "../data/sequences.ts";
import type { Device } from "../engine/devices.ts";
import { OnnxGradientSource } from "../engine/source.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { ModelConfig } from "../models/index.ts";
import { tensorViews } from "../sync/weights.ts";
import { evaluateLoss, type StepReport, trainLocal, trainResident } from "../train/loop.ts";
import { Sgd } from "../train/optimizers.ts";
import type { ParamRecord } from "../train/params.ts";
import { makeSchedule } from "../train/schedule.ts";
import { type ZerothOrderOptions, zerothOrderSteps } from "../train/zeroth-order.ts";

/** Rows held out for evaluation: this fraction of the client's rows, at least one and at most MAX_EVAL_ROWS. */
const EVAL_FRACTION = 0.1;
const MAX_EVAL_ROWS = 8;
/** Local steps clip the gradient to this global norm. */
export const CLIP_NORM = 1;

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

export interface TrainerOptions {
  device: Device;
  threads?: number;
  batchSize: number;
  /**
   * Run each local step as one graph that also clips and applies the update, with the weights kept by the
   * session between steps (engine/resident.ts; default). On webgpu they stay in GPU memory; on the CPU it spares
   * trainLocal's passes over the weights in JavaScript: at the reference config on 2 cores, 0.86–0.90 s a step
   * against 1.04–1.10 s, and about 80 MB less peak RSS. false: trainLocal with Sgd.
   */
  residentWeights?: boolean;
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
    private readonly engine: OnnxGradientSource,
    private readonly batchSize: number,
    private readonly residentWeights: boolean,
  ) {}

  static async create(config: ModelConfig, plan: Plan, data: LocalData, options: TrainerOptions) {
    const seqLen = data.train[0]?.inputIds.length ?? 0;
    const batchSize = Math.min(options.batchSize, data.train.length);
    const common = {
      seqLen,
      device: options.device,
      ...(options.threads ? { threads: options.threads } : {}),
    };
    const engine = new OnnxGradientSource(config, { ...common, batchSize });
    return new LocalTrainer(plan, data, engine, batchSize, options.residentWeights ?? true);
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
    const rows = batches(this.data.eval, { batchSize: this.batchSize, seed: 0, dropLast: false });
    return evaluateLoss(this.record(values), this.engine, rows);
  }

  /** T steps of plain SGD (the paper's local optimizer) on `values`, in place; round-specific data order. */
  async trainSteps(
    values: Float32Array,
    round: number,
    steps: number,
    learningRate: number,
    onStep?: (step: number, loss: number) => void,
  ): Promise<RoundTraining> {
    const data = epochBatches(this.data.train, { batchSize: this.batchSize, seed: round + 1 });
    const options = {
      steps,
      schedule: makeSchedule({ kind: "constant", lr: learningRate }),
      onStep: (r: StepReport) => onStep?.(r.step, r.loss),
    };
    const reports = this.residentWeights
      ? await trainResident(this.record(values), this.engine.resident(CLIP_NORM), data, options)
      : await trainLocal(this.record(values), this.engine, data, {
          ...options,
          optimizer: new Sgd(),
          clipNorm: CLIP_NORM,
        });
    const tokens = reports.reduce((sum, r) => sum + r.tokens, 0);
    const trainLoss = reports.reduce((sum, r) => sum + r.loss * r.tokens, 0) / Math.max(tokens, 1);
    return { trainLoss, steps: reports.length, tokens };
  }

  /** T zeroth-order steps on `values`, in place (same data order as trainSteps); returns the (s, g) pairs. */
  async zerothOrderSteps(
    values: Float32Array,
    round: number,
    options: Omit<ZerothOrderOptions, "onStep">,
    onStep?: (step: number, loss: number) => void,
  ) {
    const steps = await zerothOrderSteps(
      values,
      this.plan,
      this.engine,
      epochBatches(this.data.train, { batchSize: this.batchSize, seed: round + 1 }),
      { ...options, onStep: (r) => onStep?.(r.step, r.loss) },
    );
    const trainLoss = steps.reduce((sum, s) => sum + s.loss, 0) / Math.max(steps.length, 1);
    return { trainLoss, pairs: steps.map(({ index, gradient }) => ({ index, gradient })) };
  }
}

// The trainer's GradientSource (client/train/loop.ts) on onnxruntime sessions. Graphs have a fixed [B, T]; a
// smaller batch is padded with masked-out positions, which changes nothing: padded rows are independent,
// padded columns come after every real position (causal attention never looks ahead), and the loss is a mean
// over masked-in positions only.
import type { Batch } from "../data/batches.ts";
import type { ModelConfig, TensorSpec } from "../models/index.ts";
import { modelTensors } from "../models/index.ts";
import type { GradientSource, ResidentSgd } from "../train/loop.ts";
import type { ParamRecord } from "../train/params.ts";
import { EngineInputError } from "./build.ts";
import { ResidentSgdSession } from "./resident.ts";
import { type FloatData, LossSession, type Params, type SessionOptions, TrainingSession } from "./session.ts";

export type SourceOptions = Omit<SessionOptions, "floatType">;

export class OnnxGradientSource implements GradientSource {
  private training?: TrainingSession;
  private evaluation?: LossSession;
  /** One weights-resident session per clip norm its graph was built with. */
  private readonly residentSessions = new Map<number | undefined, Promise<ResidentSgdSession>>();
  /** Gradient arrays reused every step (GradientSource callers do not keep them past the next call). */
  private grads?: Map<string, FloatData>;
  private readonly tensors: TensorSpec[];

  constructor(
    readonly config: ModelConfig,
    readonly options: SourceOptions,
  ) {
    this.tensors = modelTensors(config);
  }

  async lossAndGradients(
    params: ParamRecord,
    batch: Batch,
  ): Promise<{ loss: number; gradients: ParamRecord }> {
    this.training ??= await TrainingSession.create(this.config, this.options);
    const { loss, grads } = await this.training.step(this.params(params), this.pad(batch), this.grads);
    this.grads = grads;
    return { loss, gradients: Object.fromEntries(grads) as ParamRecord };
  }

  async loss(params: ParamRecord, batch: Batch): Promise<number> {
    this.evaluation ??= await LossSession.create(this.config, this.options);
    return this.evaluation.loss(this.params(params), this.pad(batch));
  }

  /** SGD steps with the weights kept by the session between steps (see resident.ts), clipped to `clipNorm`. */
  resident(clipNorm?: number): ResidentSgd {
    let session = this.residentSessions.get(clipNorm);
    if (!session) {
      session = ResidentSgdSession.create(this.config, this.options, clipNorm);
      this.residentSessions.set(clipNorm, session);
    }
    const ready = session;
    return {
      begin: async (params) => (await ready).begin(this.params(params)),
      step: async (batch, lr) => (await ready).step(this.pad(batch), lr),
      finish: async () => (await ready).finish(),
    };
  }

  async release(): Promise<void> {
    await this.training?.release();
    await this.evaluation?.release();
    for (const session of this.residentSessions.values()) {
      // A session that failed to start reported that to whoever used it, and holds nothing to release.
      await session.then(
        (ready) => ready.release(),
        () => undefined,
      );
    }
  }

  /** Flat arrays with the config's shapes; unknown names pass through so the session can name them. */
  private params(record: ParamRecord): Params {
    const shapes = new Map(this.tensors.map((t) => [t.name, t.shape]));
    return new Map(
      Object.entries(record).map(([name, data]) => [
        name,
        { shape: shapes.get(name) ?? [data.length], data },
      ]),
    );
  }

  private pad(batch: Batch): { inputIds: BigInt64Array; targets: BigInt64Array; lossMask: Float32Array } {
    const { batchSize, seqLen } = this.options;
    if (batch.batchSize > batchSize || batch.seqLen > seqLen) {
      throw new EngineInputError(
        `batch [${batch.batchSize}, ${batch.seqLen}] does not fit the session's [${batchSize}, ${seqLen}]`,
      );
    }
    const inputIds = new BigInt64Array(batchSize * seqLen);
    const targets = new BigInt64Array(batchSize * seqLen);
    const lossMask = new Float32Array(batchSize * seqLen);
    for (let b = 0; b < batch.batchSize; b++) {
      for (let t = 0; t < batch.seqLen; t++) {
        const [from, to] = [b * batch.seqLen + t, b * seqLen + t];
        inputIds[to] = BigInt(batch.inputIds[from] as number);
        targets[to] = BigInt(batch.targets[from] as number);
        lossMask[to] = batch.lossMask[from] as number;
      }
    }
    return { inputIds, targets, lossMask };
  }
}

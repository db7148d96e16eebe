import type { Batch } from "../../client/data/batches.ts";
import type { GradientSource } from "../../client/train/loop.ts";
import type { ParamRecord } from "../../client/train/params.ts";

/**
 * A real (if tiny) language model for exercising the trainer without ONNX Runtime: a bigram table,
 * logits[input, :] scoring the next token, with the masked mean cross-entropy loss the engine uses and its
 * exact gradient, (softmax − one-hot) / N on the input's row.
 */
export class BigramModel implements GradientSource {
  constructor(readonly vocabSize: number) {}

  init(): ParamRecord {
    return { logits: new Float32Array(this.vocabSize * this.vocabSize) };
  }

  async loss(params: ParamRecord, batch: Batch): Promise<number> {
    return this.compute(params, batch, undefined);
  }

  async lossAndGradients(
    params: ParamRecord,
    batch: Batch,
  ): Promise<{ loss: number; gradients: ParamRecord }> {
    const gradient = new Float32Array(this.vocabSize * this.vocabSize);
    const loss = this.compute(params, batch, gradient);
    return { loss, gradients: { logits: gradient } };
  }

  private compute(params: ParamRecord, batch: Batch, gradient: Float32Array | undefined): number {
    const logits = params.logits as Float32Array;
    const V = this.vocabSize;
    let count = 0;
    for (const m of batch.lossMask) count += m;
    let total = 0;
    const probabilities = new Float64Array(V);
    batch.lossMask.forEach((m, t) => {
      if (m === 0) return;
      const row = (batch.inputIds[t] as number) * V;
      const target = batch.targets[t] as number;
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < V; j++) max = Math.max(max, logits[row + j] as number);
      let sum = 0;
      for (let j = 0; j < V; j++) {
        probabilities[j] = Math.exp((logits[row + j] as number) - max);
        sum += probabilities[j] as number;
      }
      total += Math.log(sum) + max - (logits[row + target] as number);
      if (gradient === undefined) return;
      for (let j = 0; j < V; j++) {
        const g = (probabilities[j] as number) / sum - (j === target ? 1 : 0);
        gradient[row + j] = (gradient[row + j] as number) + g / count;
      }
    });
    return total / count;
  }
}

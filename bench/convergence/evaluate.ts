// The benchmark's own judge: one global held-out set (the State of the Union text that follows each client's
// training share, so it spans every client's distribution and no client trains on it), and the loss of every
// committed checkpoint on it, fetched the way an operator would (export to one safetensors file, download).

import type { Http } from "../../client/api/http.ts";
import type { OperatorApi } from "../../client/api/routes.ts";
import { batches } from "../../client/data/batches.ts";
import { prepareSequences, type Sequence } from "../../client/data/sequences.ts";
import { heldOutSotu } from "../../client/demo/sotu.ts";
import { OnnxGradientSource } from "../../client/engine/source.ts";
import type { ModelDir } from "../../client/participant/model-dir.ts";
import { evaluateLoss } from "../../client/train/loop.ts";
import { decodeSafetensors } from "../../core/formats/safetensors.ts";

const BATCH = 8;

export class GlobalEval {
  private constructor(
    readonly rows: Sequence[],
    private readonly source: OnnxGradientSource,
  ) {}

  /** At most `rowsPerClient` packed rows of held-out text per client, after its `charsPerClient` of training. */
  static create(
    model: ModelDir,
    split: { clients: number; charsPerClient: number; rowsPerClient: number },
    seqLen: number,
  ): GlobalEval {
    // Enough characters for the rows asked for: a byte-level token per character, plus sentence slack.
    const chars = 2 * split.rowsPerClient * seqLen;
    const examples = heldOutSotu(split.clients, split.charsPerClient, chars);
    const { sequences } = prepareSequences(examples, model.tokenizer, { seqLen, mode: "pack", seed: 0 });
    const rows = sequences.slice(0, split.clients * split.rowsPerClient);
    if (rows.length === 0) throw new RangeError("the held-out split packs into no rows; lower --chars");
    return new GlobalEval(rows, new OnnxGradientSource(model.config, { batchSize: BATCH, seqLen }));
  }

  /** Loss of checkpoint `checkpoint` of `runId`, exported by the server and downloaded. */
  async checkpointLoss(
    operator: OperatorApi,
    http: Http,
    runId: string,
    checkpoint: number,
  ): Promise<number> {
    const exported = await operator.exportCheckpoint(runId, checkpoint);
    const { tensors } = decodeSafetensors(await http.download(exported.url));
    const params = Object.fromEntries(tensors.map((t) => [t.name, t.data]));
    return evaluateLoss(
      params,
      this.source,
      batches(this.rows, { batchSize: BATCH, seed: 0, dropLast: false }),
    );
  }

  release(): Promise<void> {
    return this.source.release();
  }
}

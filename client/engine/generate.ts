// Greedy decoding on a forward session. The forward graph has a fixed length T, so each step runs the last T
// tokens padded on the right; causal attention makes the padding invisible to the position being predicted.
import { EngineInputError } from "./build.ts";
import type { ForwardSession, Params } from "./session.ts";

export interface GenerateOptions {
  maxNewTokens: number;
  /** Stop after emitting this token (e.g. the tokenizer's end-of-text id). */
  stopToken?: number;
}

/** The tokens greedily generated after `prompt` (not including it), using a session of batch size 1. */
export async function generateGreedy(
  session: ForwardSession,
  params: Params,
  prompt: readonly number[],
  opts: GenerateOptions,
): Promise<number[]> {
  const { batchSize, seqLen } = session.options;
  if (batchSize !== 1)
    throw new EngineInputError(`greedy generation needs a session of batch size 1, got ${batchSize}`);
  if (prompt.length === 0) throw new EngineInputError("greedy generation needs a non-empty prompt");
  const vocab = session.config.vocabSize;
  const tokens = [...prompt];
  const generated: number[] = [];
  while (generated.length < opts.maxNewTokens) {
    const window = tokens.slice(-seqLen);
    const ids = new BigInt64Array(seqLen);
    window.forEach((t, i) => {
      ids[i] = BigInt(t);
    });
    const logits = await session.logits(params, ids);
    const last = logits.subarray((window.length - 1) * vocab, window.length * vocab);
    let best = 0;
    for (let v = 1; v < vocab; v++) if ((last[v] as number) > (last[best] as number)) best = v;
    tokens.push(best);
    generated.push(best);
    if (best === opts.stopToken) break;
  }
  return generated;
}

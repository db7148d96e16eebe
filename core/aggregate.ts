/**
 * Aggregation: ḡ = Σ_i p_i·γ_i with p_i ∝ example count (or equal). Accumulated in float64 over clients sorted
 * by id (code-unit order), then divided by Σ weights and rounded once to float32, so the bytes do not depend on
 * the order in which uploads arrived.
 */
import { assertFinite, assertLength, InvalidArgumentError } from "./errors.ts";

export interface ClientUpload {
  clientId: string;
  coefficients: Float32Array;
  /** Number of training examples behind this update (the weight under "examples"). */
  examples: number;
}

export type Weighting = "examples" | "equal";

export interface ClientWeight {
  clientId: string;
  weight: number;
}

function checkWeighting(weighting: Weighting): void {
  if (weighting !== "examples" && weighting !== "equal") {
    throw new InvalidArgumentError(
      `weighting is ${JSON.stringify(weighting)}; expected "examples" or "equal"`,
    );
  }
}

/** A client's weight: its example count (a positive integer), or 1. */
function weightOf(upload: Pick<ClientUpload, "clientId" | "examples">, weighting: Weighting): number {
  if (weighting === "equal") return 1;
  if (!Number.isSafeInteger(upload.examples) || upload.examples < 1) {
    throw new InvalidArgumentError(
      `client "${upload.clientId}" reports ${upload.examples} examples; expected a positive integer`,
    );
  }
  return upload.examples;
}

const byClientId = (a: { clientId: string }, b: { clientId: string }) =>
  a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0;

/** Refuses a client id that does not come after `previous` in code-unit order. */
function checkOrder(clientId: string, previous: string | undefined): void {
  if (previous === undefined || clientId > previous) return;
  throw new InvalidArgumentError(
    clientId === previous
      ? `client "${clientId}" appears twice; expected one upload per client`
      : `client "${clientId}" comes after "${previous}"; expected uploads in client-id order`,
  );
}

/**
 * Each client's weight (its example count, or 1), in aggregation order: sorted by client id in code-unit order.
 * `total` is their sum. Refuses an empty list, a client listed twice, and a non-positive example count.
 */
export function clientWeights(
  uploads: readonly Pick<ClientUpload, "clientId" | "examples">[],
  weighting: Weighting,
): { weights: ClientWeight[]; total: number } {
  checkWeighting(weighting);
  if (uploads.length === 0) throw new InvalidArgumentError("no uploads to aggregate; expected at least one");
  let total = 0;
  let previous: string | undefined;
  const weights = [...uploads].sort(byClientId).map((upload) => {
    checkOrder(upload.clientId, previous);
    previous = upload.clientId;
    const weight = weightOf(upload, weighting);
    total += weight;
    return { clientId: upload.clientId, weight };
  });
  return { weights, total };
}

/**
 * ḡ one upload at a time, holding only the running float64 sums: uploads must come in client-id order (DynamoDB
 * keeps a round's uploads in that order, so the server reads them page by page). Same bytes as `aggregate`.
 */
export class RunningAggregate {
  private sums?: Float64Array;
  private total = 0;
  private previous?: string;
  /** Uploads added, and the examples behind them. */
  uploads = 0;
  examples = 0;

  constructor(private readonly weighting: Weighting) {
    checkWeighting(weighting);
  }

  add({ clientId, coefficients: c, examples }: ClientUpload): void {
    checkOrder(clientId, this.previous);
    const weight = weightOf({ clientId, examples }, this.weighting);
    this.sums ??= new Float64Array(c.length);
    const sums = this.sums;
    assertLength(c.length, sums.length, `coefficients of client "${clientId}"`);
    assertFinite(c, `coefficients of client "${clientId}"`);
    for (let k = 0; k < sums.length; k++) sums[k] = (sums[k] as number) + weight * (c[k] as number);
    this.total += weight;
    this.previous = clientId;
    this.uploads++;
    this.examples += examples;
  }

  /** Σ weight·γ / Σ weight, rounded once to float32. */
  mean(): Float32Array {
    const sums = this.sums;
    if (!sums) throw new InvalidArgumentError("no uploads to aggregate; expected at least one");
    return Float32Array.from(sums, (sum) => sum / this.total);
  }
}

export function aggregate(uploads: readonly ClientUpload[], weighting: Weighting): Float32Array {
  const running = new RunningAggregate(weighting);
  for (const upload of [...uploads].sort(byClientId)) running.add(upload);
  return running.mean();
}

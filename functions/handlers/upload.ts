// A client's coefficients for one round: application/octet-stream body of totalK little-endian float32, example
// count in ?examples=N, optional metrics as JSON in the x-ferret-metrics header. Accepted once, only while the round
// is open and the client is selected; the upload that meets the quorum closes the round and starts aggregation.
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { z } from "zod";
import { BadRequest, Conflict, Forbidden, PayloadTooLarge } from "../errors.ts";
import { clientOf, httpHandler, numberParam, parse } from "../http.ts";
import { metrics as observedMetrics } from "../observability.ts";
import { requireRound, requireRun } from "../rounds/lifecycle.ts";
import { MAX_UPLOAD_BYTES } from "../rounds/run-config.ts";
import type { RoundRecord } from "../storage/records.ts";
import { type UploadRefusal, UploadRefused } from "../storage/table.ts";

const examplesSchema = z.coerce.number().int().positive().max(1e12);
const metricsSchema = z
  .record(z.string().max(64), z.number().finite())
  .refine((m) => Object.keys(m).length <= 32, {
    message: "at most 32 metrics",
  });

function decodeCoefficients(body: Buffer, expected: number): Float32Array {
  if (body.byteLength > MAX_UPLOAD_BYTES) {
    throw new PayloadTooLarge(`body is ${body.byteLength} bytes; the limit is ${MAX_UPLOAD_BYTES}`);
  }
  if (body.byteLength !== expected * 4) {
    throw new BadRequest(
      "wrong_length",
      `body is ${body.byteLength} bytes; this round expects ${expected} float32 coefficients (${expected * 4} bytes)`,
    );
  }
  const values = new Float32Array(expected);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let i = 0; i < expected; i++) values[i] = view.getFloat32(i * 4, true);
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new BadRequest("non_finite", `coefficient ${bad} is ${values[bad]}; all must be finite`);
  return values;
}

/** The reason a round refuses this client, or undefined if it would accept. */
function roundRefusal(round: RoundRecord, clientId: string, now: number): Conflict | Forbidden | undefined {
  if (round.state !== "OPEN")
    return new Conflict("round_closed", `round ${round.round} is ${round.state}, not OPEN`);
  if (now >= round.deadline)
    return new Conflict("deadline_passed", `round ${round.round}'s deadline has passed`);
  if (!round.selected.includes(clientId)) {
    return new Forbidden("not_selected", `client ${clientId} is not selected for round ${round.round}`);
  }
  return undefined;
}

function explain(refusal: UploadRefusal, round: RoundRecord, clientId: string, now: number) {
  if (refusal.duplicate)
    return new Conflict("duplicate_upload", `client ${clientId} already uploaded for round ${round.round}`);
  if (refusal.clientRefused) return new Forbidden("client_revoked", `client ${clientId} is revoked`);
  return (
    roundRefusal(round, clientId, now) ??
    new Conflict("round_busy", `round ${round.round} is busy with concurrent uploads; retry`)
  );
}

export const handler = httpHandler(async (event, svc) => {
  const { runId, clientId } = clientOf(event);
  const roundNumber = numberParam(event.pathParameters?.round, "round");
  const contentType = event.headers["content-type"] ?? "";
  if (!contentType.startsWith("application/octet-stream")) {
    throw new BadRequest(
      "wrong_content_type",
      `content-type is "${contentType}"; send application/octet-stream`,
    );
  }
  const body = Buffer.from(event.body ?? "", event.isBase64Encoded ? "base64" : "utf8");
  const run = await requireRun(svc, runId);
  const coefficients = decodeCoefficients(body, run.config.plan.totalK);
  const examples = parse(examplesSchema, event.queryStringParameters?.examples, "examples");
  let metricsJson: unknown = {};
  try {
    metricsJson = JSON.parse(event.headers["x-ferret-metrics"] ?? "{}");
  } catch {
    throw new BadRequest("invalid_metrics", "x-ferret-metrics header is not JSON");
  }
  const metrics = parse(metricsSchema, metricsJson, "metrics");
  const round = await requireRound(svc, runId, roundNumber);
  const now = svc.now();
  const refusal = roundRefusal(round, clientId, now);
  if (refusal) throw refusal;
  const receivedAt = new Date(now).toISOString();
  try {
    await svc.table.recordUpload(
      { runId, round: roundNumber, clientId, coefficients, examples, metrics, receivedAt },
      now,
    );
  } catch (error) {
    if (!(error instanceof UploadRefused)) throw error;
    throw explain(error.refusal, await requireRound(svc, runId, roundNumber), clientId, now);
  }
  observedMetrics.addMetric("upload_accepted", MetricUnit.Count, 1);
  const closed = await svc.table.closeOnQuorum(runId, roundNumber);
  if (closed) await svc.platform.startAggregation(runId, roundNumber);
  return { status: 202, body: { runId, round: roundNumber, clientId, accepted: true, closedRound: closed } };
});

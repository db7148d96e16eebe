// A client's update for one round, on one route for every strategy; example count in ?examples=N, optional metrics
// as JSON in the x-ferret-metrics header. The body depends on the run's strategy:
// - ferret: application/octet-stream, totalK little-endian float32 coefficients;
// - fedkseed: application/octet-stream, (uint32 LE seed index < K, float32 LE gradient) pairs, stored dense;
// - fedavg: application/json {"sha256"} committing the update the client PUT through its update-url.
// Accepted once, only while the round is open and the client is selected; the upload that meets the quorum closes
// the round and starts aggregation.
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { z } from "zod";
import { BadRequest, PayloadTooLarge } from "../errors.ts";
import { clientOf, type HttpEvent, httpHandler, jsonBody, numberParam, parse } from "../http.ts";
import { metrics as observedMetrics } from "../observability.ts";
import { admissionRefusal, explainRefusal, requireAdmitted } from "../rounds/admission.ts";
import { commitStagedUpdate, SHA256_HEX } from "../rounds/fedavg.ts";
import { requireRound, requireRun } from "../rounds/lifecycle.ts";
import { MAX_UPLOAD_BYTES } from "../rounds/run-config.ts";
import { denseFromSeedPairs, zerothOrderOf } from "../rounds/seed-pool.ts";
import { clippedToNorm, examplesCounted, l2Norm } from "../rounds/upload-limits.ts";
import type { RunRecord } from "../storage/records.ts";
import { UploadRefused } from "../storage/upload-transaction.ts";

const examplesSchema = z.coerce.number().int().positive().max(1e12);
const metricsSchema = z
  .record(z.string().max(64), z.number().finite())
  .refine((m) => Object.keys(m).length <= 32, {
    message: "at most 32 metrics",
  });
const commitSchema = z.object({ sha256: z.string().regex(SHA256_HEX, "expected 64 lowercase hex") }).strict();

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

function requireContentType(event: HttpEvent, run: RunRecord): void {
  const expected = run.config.strategy === "fedavg" ? "application/json" : "application/octet-stream";
  const contentType = event.headers["content-type"] ?? "";
  if (!contentType.startsWith(expected)) {
    throw new BadRequest(
      "wrong_content_type",
      `content-type is "${contentType}"; a ${run.config.strategy} run takes ${expected}`,
    );
  }
}

/** ferret and fedkseed: the body's numbers, checked whole before anything is stored. */
function coefficientsOf(event: HttpEvent, run: RunRecord): Float32Array {
  const body = Buffer.from(event.body ?? "", event.isBase64Encoded ? "base64" : "utf8");
  if (run.config.strategy === "fedkseed") return denseFromSeedPairs(body, zerothOrderOf(run.config).seedPool);
  return decodeCoefficients(body, run.config.plan.totalK);
}

export const handler = httpHandler(async (event, svc) => {
  const { runId, clientId } = clientOf(event);
  const roundNumber = numberParam(event.pathParameters?.round, "round");
  const run = await requireRun(svc, runId);
  requireContentType(event, run);
  const commit =
    run.config.strategy === "fedavg" ? parse(commitSchema, jsonBody(event), "commit") : undefined;
  const sent = commit ? new Float32Array(0) : coefficientsOf(event, run);
  const norm = commit ? undefined : l2Norm(sent);
  const coefficients = norm === undefined ? sent : clippedToNorm(run.config, sent, norm);
  const claimed = parse(examplesSchema, event.queryStringParameters?.examples, "examples");
  const examples = examplesCounted(run.config, claimed);
  let metricsJson: unknown = {};
  try {
    metricsJson = JSON.parse(event.headers["x-ferret-metrics"] ?? "{}");
  } catch {
    throw new BadRequest("invalid_metrics", "x-ferret-metrics header is not JSON");
  }
  const metrics = parse(metricsSchema, metricsJson, "metrics");
  let updateNorm: number | undefined;
  if (commit) {
    await requireAdmitted(svc, runId, roundNumber, clientId);
    const ref = { runId, round: roundNumber, clientId };
    updateNorm = await commitStagedUpdate(svc, ref, run.config, commit.sha256);
  }
  const round = await requireRound(svc, runId, roundNumber);
  const now = svc.now();
  const refusal = await admissionRefusal(svc, round, clientId, now);
  if (refusal) throw refusal;
  const receivedAt = new Date(now).toISOString();
  try {
    await svc.table.recordUpload(
      {
        runId,
        round: roundNumber,
        clientId,
        coefficients,
        ...(commit ? { updateSha256: commit.sha256 } : {}),
        examples,
        metrics,
        receivedAt,
      },
      svc.now,
    );
  } catch (error) {
    if (!(error instanceof UploadRefused)) throw error;
    throw explainRefusal(error.refusal, await requireRound(svc, runId, roundNumber), clientId, now);
  }
  observedMetrics.addMetric("upload_accepted", MetricUnit.Count, 1);
  // What an operator sets maxUploadNorm from: the norms honest clients send, before any clipping.
  const sentNorm = norm ?? updateNorm;
  if (sentNorm !== undefined) observedMetrics.addMetric("upload_norm", MetricUnit.NoUnit, sentNorm);
  const closed = await svc.table.closeOnQuorum(runId, roundNumber);
  if (closed) await svc.platform.startAggregation(runId, roundNumber);
  return { status: 202, body: { runId, round: roundNumber, clientId, accepted: true, closedRound: closed } };
});

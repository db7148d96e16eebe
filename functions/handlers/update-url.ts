// fedavg: a presigned PUT for the calling client's full update to its staging key, valid until the round's deadline
// (at most an hour). Only for a selected client in an open round that has not uploaded yet: the upload route's
// refusals. The client then commits the update on the upload route with its SHA-256.
import { BadRequest } from "../errors.ts";
import { clientOf, httpHandler, numberParam } from "../http.ts";
import { requireAdmitted } from "../rounds/admission.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { objectKeys } from "../storage/objects.ts";

const MAX_SECONDS = 3600;

export const handler = httpHandler(async (event, svc) => {
  const { runId, clientId } = clientOf(event);
  const roundNumber = numberParam(event.pathParameters?.round, "round");
  const run = await requireRun(svc, runId);
  if (run.config.strategy !== "fedavg") {
    throw new BadRequest(
      "wrong_strategy",
      `run ${runId} uses strategy ${run.config.strategy}; update URLs are for fedavg runs only`,
    );
  }
  const round = await requireAdmitted(svc, runId, roundNumber, clientId);
  const now = svc.now();
  const seconds = Math.max(1, Math.min(MAX_SECONDS, Math.floor((round.deadline - now) / 1000)));
  const key = objectKeys.stagedUpdate(runId, roundNumber, clientId);
  const bytes = run.config.plan.totalParams * 4;
  return {
    status: 200,
    body: {
      url: await svc.bucket.presignPut(key, bytes, seconds),
      key,
      bytes,
      expiresAt: new Date(now + seconds * 1000).toISOString(),
    },
  };
});

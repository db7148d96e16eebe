// Starts the presigned multipart upload of the initial safetensors checkpoint: one URL per part.
import { z } from "zod";
import { Conflict } from "../errors.ts";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { objectKeys } from "../storage/objects.ts";

const body = z.object({ parts: z.number().int().min(1).max(10_000) }).strict();

export const handler = httpHandler(async (event, svc) => {
  const { parts } = parse(body, jsonBody(event), "checkpoint_upload");
  const run = await requireRun(svc, runIdParam(event));
  if (run.initialCheckpointReady)
    throw new Conflict("checkpoint_exists", `run ${run.runId} already has checkpoint 0`);
  const upload = await svc.bucket.startMultipart(objectKeys.importUpload(run.runId), parts);
  return { status: 201, body: upload };
});

// Completes the multipart upload, then imports the safetensors file as checkpoint 0 (checked against the plan).
import { z } from "zod";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { importInitialCheckpoint } from "../rounds/checkpoints.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { objectKeys } from "../storage/objects.ts";

const body = z
  .object({
    parts: z
      .array(z.object({ partNumber: z.number().int().min(1), etag: z.string().min(1) }).strict())
      .min(1),
  })
  .strict();

export const handler = httpHandler(async (event, svc) => {
  const { parts } = parse(body, jsonBody(event), "checkpoint_parts");
  const uploadId = parse(z.string().min(1), event.pathParameters?.uploadId, "uploadId");
  const run = await requireRun(svc, runIdParam(event));
  await svc.bucket.completeMultipart(objectKeys.importUpload(run.runId), uploadId, parts);
  const manifest = await importInitialCheckpoint(svc, run.runId);
  return {
    status: 200,
    body: { checkpoint: 0, shards: manifest.shards.length, totalParams: manifest.totalParams },
  };
});

// Starts the presigned multipart upload of the initial safetensors checkpoint, with the URLs of its first parts;
// the rest come from checkpoint-upload-parts.ts as the upload goes. All of a large model's URLs at once did not fit
// a Lambda reply (6 MB: an 8B model is thousands of parts, 1.7 kB a URL with a session token) and would expire
// before a slow link reached the last ones.
import { z } from "zod";
import { Conflict } from "../errors.ts";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { objectKeys } from "../storage/objects.ts";

/** S3's most parts in one multipart upload. */
export const MAX_PARTS = 10_000;
/** Part URLs in one reply: 170 kB of JSON. */
export const PART_URLS_PER_REPLY = 100;

const body = z.object({ parts: z.number().int().min(1).max(MAX_PARTS) }).strict();

export const handler = httpHandler(async (event, svc) => {
  const { parts } = parse(body, jsonBody(event), "checkpoint_upload");
  const run = await requireRun(svc, runIdParam(event));
  if (run.initialCheckpointReady)
    throw new Conflict("checkpoint_exists", `run ${run.runId} already has checkpoint 0`);
  const key = objectKeys.importUpload(run.runId);
  const uploadId = await svc.bucket.startMultipart(key);
  const partUrls = await svc.bucket.partUrls(key, uploadId, 1, Math.min(parts, PART_URLS_PER_REPLY));
  return { status: 201, body: { uploadId, partUrls } };
});

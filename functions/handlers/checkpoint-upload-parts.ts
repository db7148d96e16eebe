// Fresh presigned URLs for more parts of the initial checkpoint's multipart upload (checkpoint-upload.ts), asked
// for page by page as the upload goes, so that none expires before its part is sent.
import { z } from "zod";
import { BadRequest, Conflict } from "../errors.ts";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { objectKeys } from "../storage/objects.ts";
import { MAX_PARTS, PART_URLS_PER_REPLY } from "./checkpoint-upload.ts";

const body = z
  .object({
    first: z.number().int().min(1).max(MAX_PARTS),
    count: z.number().int().min(1).max(PART_URLS_PER_REPLY),
  })
  .strict();

export const handler = httpHandler(async (event, svc) => {
  const { first, count } = parse(body, jsonBody(event), "checkpoint_upload_parts");
  if (first + count - 1 > MAX_PARTS) {
    throw new BadRequest(
      "invalid_parts",
      `parts ${first}..${first + count - 1}: a multipart upload has at most ${MAX_PARTS} parts`,
    );
  }
  const run = await requireRun(svc, runIdParam(event));
  if (run.initialCheckpointReady)
    throw new Conflict("checkpoint_exists", `run ${run.runId} already has checkpoint 0`);
  const uploadId = parse(z.string().min(1), event.pathParameters?.uploadId, "uploadId");
  const partUrls = await svc.bucket.partUrls(objectKeys.importUpload(run.runId), uploadId, first, count);
  return { status: 200, body: { partUrls } };
});

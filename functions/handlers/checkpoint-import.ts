// Completes the multipart upload, then imports the safetensors file as checkpoint 0 (checked against the plan).
import { z } from "zod";
import { BadRequest, Conflict, HttpError } from "../errors.ts";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { logger } from "../observability.ts";
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
  // Checked before completing: a late completion would replace the file checkpoint 0 was imported from.
  if (run.initialCheckpointReady) {
    throw new Conflict("checkpoint_exists", `run ${run.runId} already has checkpoint 0`);
  }
  try {
    await svc.bucket.completeMultipart(objectKeys.importUpload(run.runId), uploadId, parts);
  } catch (error) {
    const code = (error as { name?: string }).name;
    if (code !== "NoSuchUpload" && code !== "InvalidPart" && code !== "InvalidPartOrder") throw error;
    throw new BadRequest(
      "invalid_upload",
      `the checkpoint's multipart upload could not be completed (${code}): expected the uploadId and every ` +
        "part's number and ETag from this run's checkpoint upload",
    );
  }
  const manifest = await importInitialCheckpoint(svc, run.runId).catch(async (error: unknown) => {
    // The operator's CLI reads this from the run's status when the HTTP API answered 503 meanwhile.
    const failure =
      error instanceof HttpError
        ? { uploadId, status: error.statusCode, error: error.code, message: error.message }
        : {
            uploadId,
            status: 500,
            error: "internal",
            message: `the import failed: ${(error as Error).message}`,
          };
    await svc.table.recordImportFailure(run.runId, failure).catch((recordError: Error) => {
      logger.warn("import failure not recorded", { runId: run.runId, reason: recordError.message });
    });
    throw error;
  });
  return {
    status: 200,
    body: { checkpoint: 0, shards: manifest.shards.length, totalParams: manifest.totalParams },
  };
});

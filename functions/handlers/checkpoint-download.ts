// A committed checkpoint's manifest (SHA-256 per block and per shard) and presigned URLs for it and each shard.
import { clientOf, httpHandler, numberParam } from "../http.ts";
import { requireCommittedCheckpoint } from "../rounds/checkpoints.ts";
import { objectKeys } from "../storage/objects.ts";

export const handler = httpHandler(async (event, svc) => {
  const { runId } = clientOf(event);
  const checkpoint = numberParam(event.pathParameters?.checkpoint, "checkpoint");
  const manifest = await requireCommittedCheckpoint(svc, runId, checkpoint);
  return {
    status: 200,
    body: {
      manifest,
      manifestUrl: await svc.bucket.presignGet(objectKeys.manifest(runId, checkpoint)),
      shardUrls: await Promise.all(manifest.shards.map((s) => svc.bucket.presignGet(s.key))),
    },
  };
});

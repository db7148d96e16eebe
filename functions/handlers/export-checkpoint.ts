// Exports checkpoint r (the weights round r started from; r + 1 is round r's result) as one safetensors file.
import { httpHandler, numberParam, runIdParam } from "../http.ts";
import { exportCheckpoint } from "../rounds/checkpoints.ts";

export const handler = httpHandler(async (event, svc) => {
  const checkpoint = numberParam(event.pathParameters?.round, "round");
  const key = await exportCheckpoint(svc, runIdParam(event), checkpoint);
  return { status: 200, body: { checkpoint, key, url: await svc.bucket.presignGet(key) } };
});

// Exports checkpoint r (the weights round r started from; r + 1 is round r's result) as one safetensors file. A
// large model's export outlasts the HTTP API's 30 s and goes on after the gateway answers 503: a repeat of the
// request meanwhile answers 202, and once the file is there, 200 with a URL to it.
import { httpHandler, numberParam, runIdParam } from "../http.ts";
import { exportCheckpoint } from "../rounds/checkpoints.ts";

export const handler = httpHandler(async (event, svc) => {
  const checkpoint = numberParam(event.pathParameters?.round, "round");
  const key = await exportCheckpoint(svc, runIdParam(event), checkpoint);
  if (key === undefined) return { status: 202, body: { checkpoint, state: "exporting" } };
  return { status: 200, body: { checkpoint, key, url: await svc.bucket.presignGet(key) } };
});

import { randomBytes, randomUUID } from "node:crypto";
import { httpHandler, jsonBody, parse } from "../http.ts";
import { resolveRunConfig, runConfigSchema } from "../rounds/run-config.ts";
import type { RunRecord } from "../storage/records.ts";

export const handler = httpHandler(async (event, svc) => {
  const config = resolveRunConfig(parse(runConfigSchema, jsonBody(event), "run_config"));
  const run: RunRecord = {
    runId: randomUUID(),
    config,
    status: "CREATED",
    salt: randomBytes(32).toString("hex"),
    initialCheckpointReady: false,
    currentRound: -1,
    createdAt: new Date(svc.now()).toISOString(),
  };
  await svc.table.createRun(run);
  return { status: 201, body: { runId: run.runId, status: run.status, config } };
});

// Registers a client and returns its bearer token. This is the only time the token is shown.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { Conflict } from "../errors.ts";
import { httpHandler, jsonBody, parse, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { hashToken, newToken } from "../tokens.ts";

const body = z.object({ name: z.string().min(1).max(200) }).strict();

export const handler = httpHandler(async (event, svc) => {
  const { name } = parse(body, jsonBody(event), "client");
  const run = await requireRun(svc, runIdParam(event));
  const token = newToken();
  const client = {
    runId: run.runId,
    clientId: randomUUID(),
    name,
    revoked: false,
    createdAt: new Date(svc.now()).toISOString(),
  };
  const holder = await svc.table.createClient(client, hashToken(token));
  if (holder) {
    throw new Conflict(
      "name_taken",
      `run ${run.runId} already has a client named ${JSON.stringify(name)} (${holder}); expected a name no other ` +
        "active client of the run has",
    );
  }
  return { status: 201, body: { clientId: client.clientId, name, token } };
});

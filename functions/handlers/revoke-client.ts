import { z } from "zod";
import { Conflict, NotFound } from "../errors.ts";
import { httpHandler, parse, runIdParam } from "../http.ts";
import { releaseRevokedClients } from "../rounds/lifecycle.ts";

export const handler = httpHandler(async (event, svc) => {
  const runId = runIdParam(event);
  const clientId = parse(z.string().uuid(), event.pathParameters?.clientId, "clientId");
  const client = await svc.table.getClient(runId, clientId);
  if (!client) throw new NotFound("client_not_found", `run ${runId} has no client ${clientId}`);
  const revoked = await svc.table.revokeClient(runId, clientId);
  // Also on a repeat: a first attempt that revoked and then failed may not have released the client's name for
  // another client, nor the open round.
  await svc.table.releaseClientName(runId, client.name, clientId);
  await releaseRevokedClients(svc, runId);
  if (!revoked) throw new Conflict("already_revoked", `client ${clientId} is already revoked`);
  return { status: 200, body: { clientId, revoked: true } };
});

import { httpHandler, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";

export const handler = httpHandler(async (event, svc) => {
  const { salt: _secret, ...run } = await requireRun(svc, runIdParam(event));
  const clients = await svc.table.listClients(run.runId);
  const round = run.currentRound >= 0 ? await svc.table.getRound(run.runId, run.currentRound) : undefined;
  return {
    status: 200,
    body: {
      ...run,
      clients: clients.map(({ clientId, name, revoked }) => ({ clientId, name, revoked })),
      round: round && { ...round, deadline: new Date(round.deadline).toISOString() },
    },
  };
});

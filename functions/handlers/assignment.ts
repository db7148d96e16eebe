// What the calling client should do now: the current round, its seed and plan, the checkpoint to start from,
// and whether it is selected (and has already uploaded). fedkseed runs add the seed pool the client draws from.
import { Conflict } from "../errors.ts";
import { clientOf, httpHandler } from "../http.ts";
import { requireRound, requireRun } from "../rounds/lifecycle.ts";
import { seedPoolOf } from "../rounds/seed-pool.ts";

export const handler = httpHandler(async (event, svc) => {
  const { runId, clientId } = clientOf(event);
  const run = await requireRun(svc, runId);
  if (run.currentRound < 0) throw new Conflict("no_round", `run ${runId} has not started a round yet`);
  const round = await requireRound(svc, runId, run.currentRound);
  return {
    status: 200,
    body: {
      runId,
      runStatus: run.status,
      round: round.round,
      state: round.state,
      seed: round.seed,
      strategy: run.config.strategy,
      basis: run.config.basis,
      plan: run.config.plan,
      baseCheckpoint: round.baseCheckpoint,
      selected: round.selected.includes(clientId),
      deadline: new Date(round.deadline).toISOString(),
      // Only ferret uploads projected coefficients; fedavg and fedkseed clients upload Δ and seed pairs.
      ...(run.config.strategy === "ferret" ? { coefficients: run.config.plan.totalK } : {}),
      localSteps: run.config.localSteps,
      seedPool: seedPoolOf(run),
    },
  };
});

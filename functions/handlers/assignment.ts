// What the calling client should do now: the current round, its seed and plan, the checkpoint to start from,
// and whether it is selected (and has already uploaded). fedkseed runs add the seed pool the client draws from.
import { Conflict } from "../errors.ts";
import { clientOf, httpHandler } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";
import { seedPoolOf } from "../rounds/seed-pool.ts";

export const handler = httpHandler(async (event, svc) => {
  const { runId, clientId } = clientOf(event);
  // Every waiting client asks every few seconds, and all of a run's items share one partition (3,000 strongly
  // consistent reads of 4 KB a second): eventually consistent reads halve the cost. A reply a second stale only
  // delays the client by a poll, and its upload is checked against the round as it stands.
  const run = await requireRun(svc, runId, false);
  if (run.currentRound < 0) throw new Conflict("no_round", `run ${runId} has not started a round yet`);
  const round = await svc.table.getRound(runId, run.currentRound, false);
  if (!round) throw new Conflict("no_round", `run ${runId}'s round ${run.currentRound} is not readable yet`);
  // The plan never changes during a run (51 KB for an 8B model): a client that holds it asks without it.
  const withPlan = event.queryStringParameters?.plan !== "omit";
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
      ...(withPlan ? { plan: run.config.plan } : {}),
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

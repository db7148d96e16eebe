// CREATED or PAUSED -> ACTIVE; opens round 0, or the round after the last finished one.
import { Conflict } from "../errors.ts";
import { httpHandler, runIdParam } from "../http.ts";
import { advance, openRound, requireRun } from "../rounds/lifecycle.ts";

export const handler = httpHandler(async (event, svc) => {
  const run = await requireRun(svc, runIdParam(event));
  if (!run.initialCheckpointReady) {
    throw new Conflict("checkpoint_missing", `run ${run.runId} has no initial checkpoint; upload it first`);
  }
  if (!(await svc.table.setRunStatus(run.runId, ["CREATED", "PAUSED"], "ACTIVE"))) {
    throw new Conflict("already_active", `run ${run.runId} is already active`);
  }
  const active = { ...run, status: "ACTIVE" as const };
  if (run.currentRound < 0) await openRound(svc, active, 0, 0);
  else await advance(svc, run.runId, run.currentRound);
  const { salt: _secret, ...after } = await requireRun(svc, run.runId);
  return { status: 200, body: after };
});

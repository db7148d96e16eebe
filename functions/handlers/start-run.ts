// CREATED or PAUSED -> ACTIVE; opens round 0, or the round after the last finished one. A start that fails after
// the status changed puts the status back, so that starting again retries it all.
import { Conflict } from "../errors.ts";
import { httpHandler, runIdParam } from "../http.ts";
import { requireRun, resumeRun } from "../rounds/lifecycle.ts";

export const handler = httpHandler(async (event, svc) => {
  const run = await requireRun(svc, runIdParam(event));
  if (!run.initialCheckpointReady) {
    throw new Conflict("checkpoint_missing", `run ${run.runId} has no initial checkpoint; upload it first`);
  }
  if (!(await svc.table.setRunStatus(run.runId, ["CREATED", "PAUSED"], "ACTIVE"))) {
    throw new Conflict("already_active", `run ${run.runId} is already active`);
  }
  try {
    await resumeRun(svc, { ...run, status: "ACTIVE" });
  } catch (error) {
    await svc.table.setRunStatus(run.runId, ["ACTIVE"], run.status);
    throw error;
  }
  const { salt: _secret, ...after } = await requireRun(svc, run.runId);
  return { status: 200, body: after };
});

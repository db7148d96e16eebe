// ACTIVE -> PAUSED. A round already open runs to its end; no next round opens until the run is started again.
import { Conflict } from "../errors.ts";
import { httpHandler, runIdParam } from "../http.ts";
import { requireRun } from "../rounds/lifecycle.ts";

export const handler = httpHandler(async (event, svc) => {
  const run = await requireRun(svc, runIdParam(event));
  if (!(await svc.table.setRunStatus(run.runId, ["ACTIVE"], "PAUSED"))) {
    throw new Conflict("not_active", `run ${run.runId} is ${run.status}, not ACTIVE`);
  }
  return { status: 200, body: { runId: run.runId, status: "PAUSED" } };
});

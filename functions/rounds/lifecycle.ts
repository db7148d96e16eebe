// Opening, closing and advancing rounds. Each transition is one conditional write in RoundTable; the functions here
// decide which transition to attempt and what follows when it wins.
import { createHash } from "node:crypto";
import { deriveRoundSeed, seedToHex } from "../../core/seed.ts";
import { Conflict, NotFound } from "../errors.ts";
import type { Services } from "../services.ts";
import type { RoundRecord, RunRecord } from "../storage/records.ts";

/** The run, read strongly consistent unless `consistent` is false. */
export async function requireRun(svc: Services, runId: string, consistent = true): Promise<RunRecord> {
  const run = await svc.table.getRun(runId, consistent);
  if (!run) throw new NotFound("run_not_found", `run ${runId} does not exist`);
  return run;
}

export async function requireRound(svc: Services, runId: string, round: number): Promise<RoundRecord> {
  const record = await svc.table.getRound(runId, round);
  if (!record) throw new NotFound("round_not_found", `run ${runId} has no round ${round}`);
  return record;
}

/** Picks clientsPerRound of the active clients, ordered by a hash of the round seed: fresh each round, reproducible. */
function selectClients(clientIds: string[], seed: string, count: number): string[] {
  const rank = (id: string) => createHash("sha256").update(`${seed}:${id}`).digest("hex");
  return clientIds
    .map((id) => ({ id, rank: rank(id) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0))
    .slice(0, count)
    .map((c) => c.id)
    .sort();
}

/** Opens round `round` on `baseCheckpoint`; undefined when another caller opened it first. */
export async function openRound(
  svc: Services,
  run: RunRecord,
  round: number,
  baseCheckpoint: number,
): Promise<RoundRecord | undefined> {
  const seed = seedToHex(deriveRoundSeed(run.salt, round));
  const active = (await svc.table.listClients(run.runId)).filter((c) => !c.revoked).map((c) => c.clientId);
  if (active.length === 0)
    throw new Conflict(
      "no_clients",
      `run ${run.runId} has no active clients to select; expected at least one (ferret clients add)`,
    );
  const selected = selectClients(active, seed, run.config.clientsPerRound);
  const now = svc.now();
  const record: RoundRecord = {
    runId: run.runId,
    round,
    state: "OPEN",
    seed,
    baseCheckpoint,
    selected,
    quorum: Math.min(run.config.quorum, selected.length),
    minUploads: Math.min(run.config.minUploads, selected.length),
    deadline: now + run.config.deadlineSeconds * 1000,
    uploadCount: 0,
    openedAt: new Date(now).toISOString(),
  };
  if (!(await svc.table.openRound(record))) {
    await scheduleOpenDeadline(svc, run.runId, round);
    return undefined;
  }
  await svc.platform.scheduleDeadline(run.runId, round, record.deadline);
  return record;
}

/**
 * Schedules round `round`'s deadline again if the round is still OPEN. Scheduling is idempotent per round, so
 * this repairs a round whose record was written by a caller that died before its schedule was.
 */
async function scheduleOpenDeadline(svc: Services, runId: string, round: number): Promise<void> {
  const record = await svc.table.getRound(runId, round);
  if (record?.state === "OPEN") await svc.platform.scheduleDeadline(runId, round, record.deadline);
}

/**
 * After round `round` finished (DONE or FAILED): opens the next one if the run is active and still on it. Safe to
 * call again after a crash at any point: a next round already open gets its deadline scheduled (again).
 */
export async function advance(svc: Services, runId: string, round: number): Promise<void> {
  const run = await requireRun(svc, runId);
  const finished = await requireRound(svc, runId, round);
  if (run.status !== "ACTIVE" || (finished.state !== "DONE" && finished.state !== "FAILED")) return;
  if (run.currentRound === round + 1) return scheduleOpenDeadline(svc, runId, round + 1);
  if (run.currentRound !== round) return;
  await openRound(svc, run, round + 1, finished.state === "DONE" ? round + 1 : finished.baseCheckpoint);
}

/**
 * Sets an ACTIVE run's rounds going again: round 0, or the current round where it stands (its deadline scheduled
 * if it is open, resumed if it closed), or the round after it. An open round already past its deadline, whose
 * deadline call was lost after Lambda's retries, is closed here and now.
 */
export async function resumeRun(svc: Services, run: RunRecord): Promise<void> {
  if (run.currentRound < 0) {
    await openRound(svc, run, 0, 0);
    return;
  }
  const current = await requireRound(svc, run.runId, run.currentRound);
  if (current.state !== "OPEN") await resumeClosedRound(svc, current);
  else if (svc.now() >= current.deadline) await closeAtDeadline(svc, run.runId, current.round);
  else await scheduleOpenDeadline(svc, run.runId, current.round);
}

/**
 * Finishes what a crashed caller left of a round that is no longer OPEN: an aggregation that was never started
 * (starting it is idempotent per round), or a next round that was never opened.
 */
async function resumeClosedRound(svc: Services, record: RoundRecord): Promise<void> {
  if (record.state === "AGGREGATING") await svc.platform.startAggregation(record.runId, record.round);
  else await advance(svc, record.runId, record.round);
}

/**
 * The round's deadline arrived: aggregate what came if it reaches the minimum, otherwise fail it and move on. A
 * round already closed is resumed where a crash may have left it (resumeClosedRound): every round gets its
 * deadline event, and Lambda retries a deadline invocation that fails.
 */
export async function closeAtDeadline(svc: Services, runId: string, round: number) {
  const record = await requireRound(svc, runId, round);
  const now = svc.now();
  if (record.state !== "OPEN") {
    await resumeClosedRound(svc, record);
    return { action: "none", state: record.state } as const;
  }
  if (now < record.deadline) return { action: "early", state: record.state } as const;
  if (record.uploadCount >= record.minUploads) {
    if (await svc.table.closeAtDeadline(runId, round, now)) {
      await svc.platform.startAggregation(runId, round);
      return { action: "aggregating", state: "AGGREGATING" } as const;
    }
    return { action: "none", state: (await requireRound(svc, runId, round)).state } as const;
  }
  const reason = `deadline passed with ${record.uploadCount} of the minimum ${record.minUploads} uploads`;
  if (await svc.table.failAtDeadline(runId, round, now, reason)) {
    await advance(svc, runId, round);
    return { action: "failed", state: "FAILED", reason } as const;
  }
  return { action: "none", state: (await requireRound(svc, runId, round)).state } as const;
}

/**
 * Revoked clients selected for the open round that had not uploaded will never upload: the round waits for no more
 * uploads than its selected clients can still send (never fewer than its minimum), and closes at once if those it
 * has meet that. A round whose quorum was all its selected clients otherwise waited for its deadline. Recomputed
 * from the table each time, so a repeat (a revocation retried after a failure here) changes nothing more.
 */
export async function releaseRevokedClients(svc: Services, runId: string): Promise<void> {
  const { currentRound } = await requireRun(svc, runId);
  const round = currentRound < 0 ? undefined : await svc.table.getRound(runId, currentRound);
  if (round?.state !== "OPEN") return;
  const revoked = new Set(
    (await svc.table.listClients(runId)).filter((c) => c.revoked).map((c) => c.clientId),
  );
  // Read after the revocations, which the upload transaction checks: an upload is either in by now or refused.
  let reachable = 0;
  for (const clientId of round.selected) {
    if (!revoked.has(clientId) || (await svc.table.hasUpload(runId, round.round, clientId))) reachable++;
  }
  const quorum = Math.max(round.minUploads, Math.min(round.quorum, reachable));
  if (!(await svc.table.lowerQuorum(runId, round.round, quorum))) return;
  if (await svc.table.closeOnQuorum(runId, round.round))
    await svc.platform.startAggregation(runId, round.round);
}

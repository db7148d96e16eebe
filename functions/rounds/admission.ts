// Who may send an update for a round, and why not: shared by the upload route and fedavg's update-url route, so
// both refuse the same clients with the same errors.
import { Conflict, Forbidden } from "../errors.ts";
import type { Services } from "../services.ts";
import type { RoundRecord } from "../storage/records.ts";
import type { UploadRefusal } from "../storage/upload-transaction.ts";
import { requireRound } from "./lifecycle.ts";

/** The reason a round refuses this client, or undefined if it would accept. */
export function roundRefusal(round: RoundRecord, clientId: string, now: number) {
  if (round.state !== "OPEN")
    return new Conflict("round_closed", `round ${round.round} is ${round.state}, not OPEN`);
  if (now >= round.deadline)
    return new Conflict("deadline_passed", `round ${round.round}'s deadline has passed`);
  if (!round.selected.includes(clientId)) {
    return new Forbidden("not_selected", `client ${clientId} is not selected for round ${round.round}`);
  }
  return undefined;
}

export const duplicateUpload = (round: number, clientId: string) =>
  new Conflict("duplicate_upload", `client ${clientId} already uploaded for round ${round}`);

/** Turns a refused upload transaction into the error that names why. */
export function explainRefusal(refusal: UploadRefusal, round: RoundRecord, clientId: string, now: number) {
  if (refusal.duplicate) return duplicateUpload(round.round, clientId);
  if (refusal.clientRefused) return new Forbidden("client_revoked", `client ${clientId} is revoked`);
  return (
    roundRefusal(round, clientId, now) ??
    new Conflict("round_busy", `round ${round.round} is busy with concurrent uploads; retry`)
  );
}

/**
 * Why the round refuses this client's update now, or undefined. A client that already uploaded is told
 * duplicate_upload even once the round has closed: a repeat whose reply was lost (perhaps of the upload that
 * closed the round) counts, and "closed" would tell the client it did not.
 */
export async function admissionRefusal(svc: Services, round: RoundRecord, clientId: string, now: number) {
  const refusal = roundRefusal(round, clientId, now);
  if (refusal && (await svc.table.hasUpload(round.runId, round.round, clientId))) {
    return duplicateUpload(round.round, clientId);
  }
  return refusal;
}

/**
 * The round, if it would take an update from this client now: open, before its deadline, the client selected and
 * not uploaded yet. The upload transaction checks all of it again; this is for refusing before any work.
 */
export async function requireAdmitted(
  svc: Services,
  runId: string,
  roundNumber: number,
  clientId: string,
): Promise<RoundRecord> {
  const round = await requireRound(svc, runId, roundNumber);
  const refusal = await admissionRefusal(svc, round, clientId, svc.now());
  if (refusal) throw refusal;
  if (await svc.table.hasUpload(runId, roundNumber, clientId)) throw duplicateUpload(roundNumber, clientId);
  return round;
}

// The client's loop: wait for an assignment → sync to the round's checkpoint → train T steps → upload what the
// run's strategy sends (strategies.ts). State lives on disk (see state.ts), so a restarted client resends an
// unacknowledged upload instead of training again, and never uploads twice. A stop (SIGINT/SIGTERM) ends the
// loop after the current step: between training steps, after a sync, and before an upload starts.
import { sleep } from "../api/backoff.ts";
import { ApiError } from "../api/errors.ts";
import type { ByteCounter } from "../api/http.ts";
import {
  type Assignment,
  type ClientApi,
  committedCheckpoint,
  type Strategy,
  strategyOf,
} from "../api/routes.ts";
import { type SyncMode, syncTo } from "../sync/sync.ts";
import type { StateDir } from "./state.ts";
import { bodyBytes, bodyValues, type SendApi, sendBody, type Trainer, trainRound } from "./strategies.ts";

export type { Trainer };

/** What the loop reports; the CLI prints these as lines (or JSON lines with --json). */
export type ClientEvent =
  | { event: "waiting"; reason: string; round?: number }
  /** A step of a sync: a shard downloaded, rounds replayed, or why replay gave way to a download. */
  | { event: "syncing"; checkpoint: number; message: string }
  | {
      event: "synced";
      checkpoint: number;
      method: string;
      replayed: number;
      /** Why the checkpoint was downloaded although replay was asked for. */
      reason?: string;
      bytesDown: number;
    }
  | { event: "eval"; checkpoint: number; evalLoss: number }
  | { event: "training"; round: number; steps: number }
  | { event: "step"; round: number; step: number; loss: number }
  | { event: "uploading"; round: number; bytes: number; total: number }
  | {
      event: "uploaded";
      round: number;
      strategy: Strategy;
      /** Values sent: coefficients (ferret), seed pairs (fedkseed) or update entries (fedavg). */
      coefficients: number;
      requestBytes: number;
      bodyBytes: number;
      resent: boolean;
      duplicate: boolean;
    }
  | { event: "skipped"; round: number; reason: string }
  | {
      event: "round";
      round: number;
      trainLoss: number;
      bytesUp: number;
      bytesDown: number;
      seconds: number;
    }
  | { event: "done"; checkpoint: number };

export interface LoopOptions {
  api: Pick<ClientApi, "assignment" | "log" | "checkpoint" | "runId"> &
    SendApi & { http: Pick<ClientApi["http"], "download"> & { bytes: ByteCounter } };
  /**
   * Who this client is, for its fedkseed step draws and as the owner of `state` (the CLI passes a hash of its
   * token, never the token: it is written to the state directory).
   */
  clientKey: string;
  state: StateDir;
  /** Whether `state`'s directory is named after `clientKey` (the CLI's default): then it is this client's. */
  stateNamedForClient?: boolean;
  /** Built once, from the first assignment (plan, local batch size). */
  trainer: (assignment: Assignment) => Promise<Trainer>;
  sync: SyncMode;
  pollMs: number;
  /** Stop once this checkpoint is committed, after syncing to it and evaluating it. */
  untilCheckpoint?: number;
  emit: (event: ClientEvent) => void;
  /**
   * Aborted by SIGINT/SIGTERM: the loop stops after the current training step, or at once while it waits (for a
   * round, or with backoff for the server when `api`'s retries share the signal), and returns -1.
   */
  signal?: AbortSignal;
}

/** The newest checkpoint the server has committed, as far as the assignment tells. */

export async function runClient(options: LoopOptions): Promise<number> {
  try {
    return await participate(options);
  } catch (error) {
    if (options.signal?.aborted && isStop(error, options.signal.reason)) return -1;
    throw error;
  }
}

/** The stop's own reason, or transfers that ran in parallel (an AggregateError) each ended by it. */
function isStop(error: unknown, reason: unknown): boolean {
  if (error === reason) return true;
  return (
    error instanceof AggregateError && error.errors.length > 0 && error.errors.every((e) => isStop(e, reason))
  );
}

async function participate(options: LoopOptions): Promise<number> {
  const { api, state, emit } = options;
  let trainer: Trainer | undefined;
  let lastWait = "";
  const wait = async (reason: string, round?: number) => {
    if (reason !== lastWait) emit({ event: "waiting", reason, ...(round === undefined ? {} : { round }) });
    lastWait = reason;
    // Jittered, so that clients started together do not keep asking the server at the same moments.
    await sleep(options.pollMs * (0.75 + Math.random() / 2), options.signal);
  };
  const syncWeights = async (assignment: Assignment, target: number) => {
    const plan = assignment.plan;
    const before = api.http.bytes.down;
    const held = await syncTo(api as ClientApi, plan, await state.weights(plan.totalParams), target, {
      mode: options.sync,
      onProgress: (message) => emit({ event: "syncing", checkpoint: target, message }),
    });
    await state.saveWeights(held.checkpoint, held.values);
    const { method, replayed, reason } = held.result;
    emit({
      event: "synced",
      checkpoint: target,
      method,
      replayed,
      ...(reason === undefined ? {} : { reason }),
      bytesDown: api.http.bytes.down - before,
    });
    trainer ??= await options.trainer(assignment);
    emit({ event: "eval", checkpoint: target, evalLoss: await trainer.evalLoss(held.values) });
    return held.values;
  };

  await state.claim(options.clientKey, options.stateNamedForClient);
  // The server reads assignments eventually consistent, so one may be from before a round this client has seen
  // (or saved an upload for): acting on it would drop that upload, or sync back to an older checkpoint.
  let newestRound = Math.max(-1, state.current.pending?.round ?? -1, ...state.current.uploaded);
  while (!options.signal?.aborted) {
    let assignment: Assignment;
    try {
      assignment = await api.assignment();
    } catch (error) {
      if (error instanceof ApiError && error.code === "no_round") {
        await wait("the run has not started a round yet");
        continue;
      }
      throw error;
    }
    const { round } = assignment;
    if (round < newestRound) {
      await wait(`the server answered with round ${round}, older than round ${newestRound}; asking again`);
      continue;
    }
    newestRound = round;
    const committed = committedCheckpoint(assignment);
    // Checkpoint numbers skip the rounds that expired or failed (round r commits r + 1), so N itself may never
    // exist: the newest committed checkpoint is the one that does.
    if (options.untilCheckpoint !== undefined && committed >= options.untilCheckpoint) {
      await syncWeights(assignment, committed);
      emit({ event: "done", checkpoint: committed });
      return committed;
    }
    const pending = state.current.pending;
    if (pending && pending.round !== round) await state.dropPending();
    if (assignment.state !== "OPEN") {
      const paused =
        assignment.runStatus === "PAUSED" ? "; the run is paused until its operator starts it" : "";
      await wait(`round ${round} is ${assignment.state}${paused}`, round);
      continue;
    }
    if (!assignment.selected || state.hasUploaded(round)) {
      await wait(
        assignment.selected
          ? `round ${round}: uploaded; waiting for the next round`
          : `not selected for round ${round}`,
        round,
      );
      continue;
    }
    lastWait = "";
    await takePart(options, assignment, syncWeights, () => trainer);
  }
  return -1;
}

/** Emits an "uploading" event at every tenth of a body of 1 MiB or more, and at its end (none for small ones). */
export function progressReporter(emit: LoopOptions["emit"], round: number) {
  let reported = 0;
  return (done: number, total: number) => {
    if (total < 1 << 20 || (done < total && done < reported + total / 10)) return;
    reported = done;
    emit({ event: "uploading", round, bytes: done, total });
  };
}

async function takePart(
  options: LoopOptions,
  assignment: Assignment,
  syncWeights: (assignment: Assignment, target: number) => Promise<Float32Array>,
  currentTrainer: () => Trainer | undefined,
): Promise<void> {
  const { api, state, emit } = options;
  const { round } = assignment;
  const started = performance.now();
  const bytesBefore = api.http.bytes.snapshot();
  const size = bodyBytes(assignment);
  const resent = state.current.pending?.round === round && (await state.pendingFile(size)) !== undefined;
  let trainLoss = state.current.pending?.metrics.trainLoss ?? Number.NaN;
  const signal = options.signal;
  if (!resent) {
    const base = await syncWeights(assignment, assignment.baseCheckpoint);
    if (signal?.aborted) return;
    const trainer = currentTrainer() as Trainer;
    const { steps } = assignment.localSteps;
    emit({ event: "training", round, steps });
    let trained: Awaited<ReturnType<typeof trainRound>>;
    try {
      trained = await trainRound(assignment, trainer, base, options.clientKey, (step, loss) => {
        emit({ event: "step", round, step, loss });
        // Unwinds the trainer after this step (a finished round is kept). It trains a copy of w_round: `base`,
        // like weights-<c>.f32, stays the synced checkpoint.
        if (step + 1 < steps) signal?.throwIfAborted();
      });
    } catch (error) {
      if (signal?.aborted && error === signal.reason) return;
      throw error;
    }
    trainLoss = trained.trainLoss;
    await state.savePending(round, trained.body, trainer.examples, { trainLoss });
  }
  // A body saved but not sent is sent by the next start, as after a kill.
  if (signal?.aborted) return;
  const upBefore = api.http.bytes.up;
  let duplicate = false;
  try {
    await sendBody(api, state, assignment, progressReporter(emit, round));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.code === "duplicate_upload") duplicate = true;
    else if (
      ["round_closed", "deadline_passed", "not_selected", "round_not_found", "norm_exceeded"].includes(
        error.code,
      )
    ) {
      await state.dropPending();
      emit({ event: "skipped", round, reason: error.message });
      return;
    } else throw error;
  }
  await state.markUploaded(round);
  emit({
    event: "uploaded",
    round,
    strategy: strategyOf(assignment),
    coefficients: bodyValues(assignment, size),
    requestBytes: api.http.bytes.up - upBefore,
    bodyBytes: size,
    resent,
    duplicate,
  });
  emit({
    event: "round",
    round,
    trainLoss,
    bytesUp: api.http.bytes.up - bytesBefore.up,
    bytesDown: api.http.bytes.down - bytesBefore.down,
    seconds: (performance.now() - started) / 1000,
  });
}

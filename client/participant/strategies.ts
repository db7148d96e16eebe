// What each strategy trains and uploads in a round, from the same synced weights w_round:
//   ferret   T SGD steps, Δ = w_round − w_local projected onto the round's K bases: 4K bytes to the upload route;
//   fedkseed T zeroth-order steps over the run's seed pool: 8 bytes per step, (index, g), to the upload route;
//   fedavg   T SGD steps, Δ itself: 4P bytes PUT to a presigned URL, then committed by its SHA-256.
// The body is saved before it is sent (state.ts), so after a restart it is sent again, never recomputed.
import { project } from "../../core/projection.ts";
import { seedFromHex } from "../../core/seed.ts";
import { encodeSeedPairs, SEED_PAIR_BYTES, seedPoolPlan } from "../../core/seed-pool.ts";
import { type Assignment, type ClientApi, strategyOf } from "../api/routes.ts";
import { clientStepRandom, type ZerothOrderOptions } from "../train/zeroth-order.ts";
import { type StateDir, StateError } from "./state.ts";

/** The part of the trainer the loop uses (a fake in unit tests). */
export interface Trainer {
  readonly examples: number;
  evalLoss(values: Float32Array): Promise<number>;
  trainSteps(
    values: Float32Array,
    round: number,
    steps: number,
    learningRate: number,
    onStep?: (step: number, loss: number) => void,
  ): Promise<{ trainLoss: number }>;
  zerothOrderSteps(
    values: Float32Array,
    round: number,
    options: Omit<ZerothOrderOptions, "onStep">,
    onStep?: (step: number, loss: number) => void,
  ): Promise<{ trainLoss: number; pairs: { index: number; gradient: number }[] }>;
}

/** A fedkseed assignment without its seed pool cannot be trained: the server must send one. */
export class AssignmentError extends Error {
  override name = "AssignmentError";
}

function seedPoolOf(assignment: Assignment) {
  if (!assignment.seedPool) {
    throw new AssignmentError(
      `round ${assignment.round} is a fedkseed round but its assignment has no seedPool`,
    );
  }
  return assignment.seedPool;
}

/** Size in bytes of a complete upload body for this assignment (a saved body of another size is not reused). */
export function bodyBytes(assignment: Assignment): number {
  switch (strategyOf(assignment)) {
    case "ferret":
      return 4 * assignment.plan.totalK;
    case "fedkseed":
      return SEED_PAIR_BYTES * assignment.localSteps.steps;
    case "fedavg":
      return 4 * assignment.plan.totalParams;
  }
}

/** Values the body carries: coefficients, seed pairs, or update entries. */
export const bodyValues = (assignment: Assignment, bytes: number) =>
  bytes / (strategyOf(assignment) === "fedkseed" ? SEED_PAIR_BYTES : 4);

/**
 * Trains on `local` (a copy of w_round, changed in place) and returns the upload body. `client` identifies this
 * client for its fedkseed step draws.
 */
export async function trainRound(
  assignment: Assignment,
  trainer: Trainer,
  base: Float32Array,
  client: string,
  onStep: (step: number, loss: number) => void,
): Promise<{ body: Uint8Array; trainLoss: number }> {
  const { round, plan, localSteps } = assignment;
  const local = base.slice();
  const strategy = strategyOf(assignment);
  if (strategy === "fedkseed") {
    const pool = seedPoolOf(assignment);
    const { trainLoss, pairs } = await trainer.zerothOrderSteps(
      local,
      round,
      {
        steps: localSteps.steps,
        learningRate: localSteps.learningRate,
        perturbation: pool.perturbation,
        pool: { seed: seedFromHex(pool.seed), plan: seedPoolPlan(plan, pool.size) },
        random: clientStepRandom(assignment.seed, client),
      },
      onStep,
    );
    return { body: encodeSeedPairs(pairs, pool.size), trainLoss };
  }
  const { trainLoss } = await trainer.trainSteps(
    local,
    round,
    localSteps.steps,
    localSteps.learningRate,
    onStep,
  );
  // Δ = w_round − w_local, written over w_local: a third copy of the model would cost its size again.
  const delta = local;
  for (let i = 0; i < delta.length; i++) delta[i] = (base[i] as number) - (local[i] as number);
  const values =
    strategy === "fedavg" ? delta : project(delta, seedFromHex(assignment.seed), plan, assignment.basis);
  return { body: new Uint8Array(values.buffer, values.byteOffset, values.byteLength), trainLoss };
}

export type SendApi = Pick<ClientApi, "upload" | "updateUrl" | "commitUpdate"> & {
  http: Pick<ClientApi["http"], "putFile">;
};

/**
 * Sends the saved body of `assignment`'s round. fedavg: a fresh presigned URL, the file streamed to it, then the
 * commit with the SHA-256 of the bytes sent; a retry after a restart repeats all three (the staging object is
 * overwritten until the commit copies it). Throws the server's ApiError unchanged.
 */
export async function sendBody(
  api: SendApi,
  state: StateDir,
  assignment: Assignment,
  onProgress: (done: number, total: number) => void,
): Promise<void> {
  const { round } = assignment;
  const expected = bodyBytes(assignment);
  const pending = state.current.pending;
  const examples = pending?.examples ?? 1;
  const metrics = pending?.metrics ?? {};
  if (strategyOf(assignment) === "fedavg") {
    const path = await state.pendingFile(expected);
    if (path === undefined)
      throw new StateError(`round ${round}: the saved update is missing or not ${expected} bytes`);
    const { url } = await api.updateUrl(round);
    const { sha256 } = await api.http.putFile(url, path, onProgress);
    await api.commitUpdate(round, sha256, examples, metrics);
    return;
  }
  const body = await state.pendingBody(expected);
  if (body === undefined)
    throw new StateError(`round ${round}: the saved upload is missing or not ${expected} bytes`);
  await api.upload(round, body, examples, metrics);
}

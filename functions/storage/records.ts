// The records the backend keeps. Storage implementations translate these to and from DynamoDB items.
import type { Plan } from "../../core/plan.ts";
import type { Family } from "../../core/projection.ts";

/** How clients train and what they upload (issue 6): Ferret's projected coefficients, FedAvg's full update, or
 * FedKSeed's (seed index, scalar gradient) pairs over a fixed pool of K gaussian directions. */
export type Strategy = "ferret" | "fedavg" | "fedkseed";

/** FedKSeed's zeroth-order settings: K directions in the pool and the two-point perturbation ε. */
export interface ZerothOrder {
  seedPool: number;
  perturbation: number;
}

export interface RunConfig {
  strategy: Strategy;
  /** Ferret's basis family; fedkseed always uses gaussian directions, fedavg none. */
  basis: Family;
  /** fedkseed only. */
  zerothOrder?: ZerothOrder;
  plan: Plan;
  learningRate: number;
  clientsPerRound: number;
  quorum: number;
  minUploads: number;
  deadlineSeconds: number;
  weighting: "examples" | "equal";
  localSteps: { steps: number; learningRate: number; batchSize: number };
  /** Largest L2 norm an upload may have (rounds/upload-limits.ts); none when absent. */
  maxUploadNorm?: number;
  /** Largest example count an upload may claim; none when absent. */
  maxExamples?: number;
}

export type RunStatus = "CREATED" | "ACTIVE" | "PAUSED";

export interface RunRecord {
  runId: string;
  config: RunConfig;
  status: RunStatus;
  /** Secret per-run salt the round seeds derive from; never returned to clients. */
  salt: string;
  /** Set once checkpoint 0 is imported. */
  initialCheckpointReady: boolean;
  /**
   * Why the import of an upload failed, for an operator whose request the HTTP API stopped waiting for (a large
   * model's import outlasts its 30 s).
   */
  importFailure?: { uploadId: string; status: number; error: string; message: string };
  /** Highest round number created, -1 before the first. */
  currentRound: number;
  createdAt: string;
}

export interface ClientRecord {
  runId: string;
  clientId: string;
  name: string;
  revoked: boolean;
  createdAt: string;
}

export type RoundState = "OPEN" | "AGGREGATING" | "DONE" | "FAILED";

export interface RoundRecord {
  runId: string;
  round: number;
  state: RoundState;
  /** 16 hex chars. */
  seed: string;
  /** Checkpoint this round trains from; its result is checkpoint `round + 1`. */
  baseCheckpoint: number;
  selected: string[];
  quorum: number;
  minUploads: number;
  /** Epoch milliseconds. */
  deadline: number;
  uploadCount: number;
  openedAt: string;
  closeReason?: "quorum" | "deadline";
  failureReason?: string;
  resultCheckpoint?: number;
}

export interface UploadRecord {
  runId: string;
  round: number;
  clientId: string;
  /** ferret: plan.totalK values; fedkseed: the dense length-K sum of the client's pairs; fedavg: empty. */
  coefficients: Float32Array;
  /** fedavg: SHA-256 (hex) of the committed update object `runs/{run}/rounds/{r}/updates/{clientId}.f32`. */
  updateSha256?: string;
  examples: number;
  metrics: Record<string, number>;
  receivedAt: string;
}

/** One fedavg client's committed update and its normalised weight in the round's mean. */
export interface WeightedUpdate {
  clientId: string;
  weight: number;
  sha256: string;
}

/**
 * One round's aggregate: what a client needs to replay w_{r+1} = w_r - scale * R(coefficients; seed). Entries
 * written before strategies existed have no `strategy` in the table and are read as "ferret".
 */
export interface LogEntry {
  runId: string;
  round: number;
  strategy: Strategy;
  /** ferret: the round seed; fedkseed: the run's pool seed. */
  seed: string;
  basis: Family;
  scale: number;
  baseCheckpoint: number;
  resultCheckpoint: number;
  /** ferret: plan.totalK; fedkseed: K; fedavg: empty (not replayable). */
  coefficients: Float32Array;
  /** fedkseed: K, so a replayer builds seedPoolPlan(plan, K). */
  seedPool?: number;
  /** fedavg: the averaged updates, in client order. */
  updates?: WeightedUpdate[];
  uploads: number;
  examples: number;
}

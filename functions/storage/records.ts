// The records the backend keeps. Storage implementations translate these to and from DynamoDB items.
import type { Plan } from "../../core/plan.ts";
import type { Family } from "../../core/projection.ts";

export interface RunConfig {
  basis: Family;
  plan: Plan;
  learningRate: number;
  clientsPerRound: number;
  quorum: number;
  minUploads: number;
  deadlineSeconds: number;
  weighting: "examples" | "equal";
  localSteps: { steps: number; learningRate: number; batchSize: number };
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
  coefficients: Float32Array;
  examples: number;
  metrics: Record<string, number>;
  receivedAt: string;
}

/** One round's aggregate: what a client needs to replay w_{r+1} = w_r - scale * R(coefficients; seed). */
export interface LogEntry {
  runId: string;
  round: number;
  seed: string;
  basis: Family;
  scale: number;
  baseCheckpoint: number;
  resultCheckpoint: number;
  coefficients: Float32Array;
  uploads: number;
  examples: number;
}

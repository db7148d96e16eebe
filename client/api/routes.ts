// The Ferret HTTP API as typed calls: the operator's routes (admin token locally, see functions/routes.ts) and the
// client's (per-client bearer token). Shapes come from the backend's own record types.
import type { Plan } from "../../core/plan.ts";
import type { Family } from "../../core/projection.ts";
import type { Manifest } from "../../functions/rounds/manifest.ts";
import type { RunConfigInput } from "../../functions/rounds/run-config.ts";
import type { LogEntry, RoundRecord, RunConfig, RunRecord } from "../../functions/storage/records.ts";
import type { Http } from "./http.ts";
import type { Signer } from "./sigv4.ts";

export type { Manifest, RunConfig, RunConfigInput };

export interface Assignment {
  runId: string;
  runStatus: RunRecord["status"];
  round: number;
  state: RoundRecord["state"];
  seed: string;
  basis: Family;
  plan: Plan;
  baseCheckpoint: number;
  selected: boolean;
  deadline: string;
  coefficients: number;
  localSteps: RunConfig["localSteps"];
}

/** One update-log entry as it travels: coefficients are base64 little-endian float32. */
export type WireLogEntry = Omit<LogEntry, "coefficients"> & { coefficients: string };

export interface CheckpointLocation {
  manifest: Manifest;
  manifestUrl: string;
  shardUrls: string[];
}

export type RunStatus = Omit<RunRecord, "salt"> & {
  clients: { clientId: string; name: string; revoked: boolean }[];
  round?: Omit<RoundRecord, "deadline"> & { deadline: string };
};

export interface UploadReceipt {
  round: number;
  accepted: boolean;
  closedRound: boolean;
}

export class ClientApi {
  constructor(
    readonly http: Http,
    readonly runId: string,
    private readonly token: string,
  ) {}

  assignment(): Promise<Assignment> {
    return this.http.json("GET", `/runs/${this.runId}/assignment`, { token: this.token });
  }

  async log(from: number, to: number): Promise<WireLogEntry[]> {
    const reply = await this.http.json<{ entries: WireLogEntry[] }>(
      "GET",
      `/runs/${this.runId}/log?from=${from}&to=${to}`,
      { token: this.token },
    );
    return reply.entries;
  }

  checkpoint(checkpoint: number): Promise<CheckpointLocation> {
    return this.http.json("GET", `/runs/${this.runId}/checkpoints/${checkpoint}`, { token: this.token });
  }

  upload(
    round: number,
    coefficients: Float32Array,
    examples: number,
    metrics: Record<string, number>,
  ): Promise<UploadReceipt> {
    return this.http.json("POST", `/runs/${this.runId}/rounds/${round}/uploads?examples=${examples}`, {
      token: this.token,
      bytes: new Uint8Array(coefficients.buffer, coefficients.byteOffset, coefficients.byteLength),
      headers: { "x-ferret-metrics": JSON.stringify(metrics) },
    });
  }
}

/** How operator requests authenticate: the local stack's admin token, or SigV4 (IAM) in AWS. */
export type OperatorAuth = { adminToken: string } | { sign: Signer };

export class OperatorApi {
  constructor(
    readonly http: Http,
    private readonly auth: OperatorAuth,
  ) {}

  private call<T>(method: string, path: string, json?: unknown): Promise<T> {
    const auth = "adminToken" in this.auth ? { token: this.auth.adminToken } : { sign: this.auth.sign };
    return this.http.json<T>(method, path, { ...auth, json });
  }

  createRun(config: RunConfigInput): Promise<{ runId: string; config: RunConfig }> {
    return this.call("POST", "/runs", config);
  }

  status(runId: string): Promise<RunStatus> {
    return this.call("GET", `/runs/${runId}`);
  }

  startCheckpointUpload(runId: string, parts: number): Promise<{ uploadId: string; partUrls: string[] }> {
    return this.call("POST", `/runs/${runId}/checkpoint/uploads`, { parts });
  }

  completeCheckpointUpload(
    runId: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
  ): Promise<{ checkpoint: number; shards: number; totalParams: number }> {
    return this.call("POST", `/runs/${runId}/checkpoint/uploads/${uploadId}/complete`, { parts });
  }

  addClient(runId: string, name: string): Promise<{ clientId: string; name: string; token: string }> {
    return this.call("POST", `/runs/${runId}/clients`, { name });
  }

  revokeClient(runId: string, clientId: string): Promise<{ clientId: string; revoked: true }> {
    return this.call("DELETE", `/runs/${runId}/clients/${clientId}`);
  }

  start(runId: string): Promise<Omit<RunRecord, "salt">> {
    return this.call("POST", `/runs/${runId}/start`);
  }

  pause(runId: string): Promise<{ runId: string; status: "PAUSED" }> {
    return this.call("POST", `/runs/${runId}/pause`);
  }

  exportCheckpoint(runId: string, checkpoint: number): Promise<{ checkpoint: number; url: string }> {
    return this.call("POST", `/runs/${runId}/rounds/${checkpoint}/export`);
  }
}

// The Ferret HTTP API as typed calls: the operator's routes (admin token locally, see functions/routes.ts) and the
// client's (per-client bearer token). Shapes come from the backend's own record types. Every call says whether it
// is idempotent, that is whether Http may send it again after it may have reached the server (a lost reply, a 5xx);
// each POST says why.
import type { Plan } from "../../core/plan.ts";
import type { Family } from "../../core/projection.ts";
import type { Manifest } from "../../functions/rounds/manifest.ts";
import type { RunConfigInput } from "../../functions/rounds/run-config.ts";
import type {
  LogEntry,
  RoundRecord,
  RunConfig,
  RunRecord,
  Strategy,
} from "../../functions/storage/records.ts";
import { sleep } from "./backoff.ts";
import { ApiError, UnreachableError } from "./errors.ts";
import type { Http } from "./http.ts";
import type { Signer } from "./sigv4.ts";

export type { Manifest, RunConfig, RunConfigInput, Strategy };

/** The newest committed checkpoint as of a round: round r commits r + 1; one that is not DONE (open, expired,
 * failed) has committed nothing beyond the checkpoint it started from. */
export const committedCheckpoint = (
  round: Pick<RoundRecord, "state" | "round" | "baseCheckpoint">,
): number => (round.state === "DONE" ? round.round + 1 : round.baseCheckpoint);

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
  /** ferret only: how many float32 coefficients an upload holds (Σ k_b). */
  coefficients?: number;
  localSteps: RunConfig["localSteps"];
  /** Absent from servers that predate strategies: read as "ferret". */
  strategy?: Strategy;
  /** fedkseed: the run's pool of `size` gaussian directions and the two-point perturbation ε. */
  seedPool?: { seed: string; size: number; perturbation: number };
}

/** The strategy an assignment or log entry names; those written before strategies existed are ferret's. */
export const strategyOf = (x: { strategy?: Strategy }): Strategy => x.strategy ?? "ferret";

/**
 * One update-log entry as it travels: coefficients are base64 little-endian float32. `strategy` is optional
 * on the wire because entries written before strategies existed have none.
 */
export type WireLogEntry = Omit<LogEntry, "coefficients" | "strategy" | "updates" | "examples"> & {
  coefficients: string;
  strategy?: Strategy;
};

/** A presigned PUT for a fedavg client's full update, staged until the commit checks it. */
export interface UpdateUrl {
  url: string;
  key: string;
  expiresAt: string;
}

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

  /** The run's plan, from the first assignment: it never changes, so later ones are asked for without it. */
  private plan?: Plan;

  async assignment(): Promise<Assignment> {
    const query = this.plan ? "?plan=omit" : "";
    const reply: Omit<Assignment, "plan"> & { plan?: Plan } = await this.http.json(
      "GET",
      `/runs/${this.runId}/assignment${query}`,
      { token: this.token, idempotent: true },
    );
    this.plan ??= reply.plan;
    const plan = reply.plan ?? this.plan;
    if (!plan) throw new ApiError(502, "bad_reply", "the assignment carried no plan, and none is held");
    return { ...reply, plan };
  }

  /** The committed rounds' entries among from..to, over as many requests as the server's replies take. */
  async log(from: number, to: number): Promise<WireLogEntry[]> {
    const entries: WireLogEntry[] = [];
    for (let start: number | undefined = from; start !== undefined; ) {
      const reply: { entries: WireLogEntry[]; next?: number } = await this.http.json(
        "GET",
        `/runs/${this.runId}/log?from=${start}&to=${to}`,
        { token: this.token, idempotent: true },
      );
      entries.push(...reply.entries);
      if (reply.next !== undefined && !(reply.next > start && reply.next <= to)) {
        throw new ApiError(
          502,
          "bad_reply",
          `log from ${start} named next ${reply.next}; expected ${start + 1}..${to}`,
        );
      }
      start = reply.next;
    }
    return entries;
  }

  checkpoint(checkpoint: number): Promise<CheckpointLocation> {
    return this.http.json("GET", `/runs/${this.runId}/checkpoints/${checkpoint}`, {
      token: this.token,
      idempotent: true,
    });
  }

  /**
   * A binary upload: ferret's float32 coefficients, or fedkseed's (seed index, gradient) pairs. Idempotent: the
   * server takes one upload per client and round and refuses a repeat with 409 duplicate_upload (even once the
   * first copy closed the round), which the participant loop counts as done.
   */
  upload(
    round: number,
    body: Float32Array | Uint8Array,
    examples: number,
    metrics: Record<string, number>,
  ): Promise<UploadReceipt> {
    return this.http.json("POST", this.uploadsPath(round, examples), {
      token: this.token,
      bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
      headers: { "x-ferret-metrics": JSON.stringify(metrics) },
      idempotent: true,
    });
  }

  /**
   * fedavg: where to PUT this client's update for `round` (refused as an upload would be). Idempotent: it only
   * presigns a PUT to the client's own staging key, the same key every time.
   */
  updateUrl(round: number): Promise<UpdateUrl> {
    return this.http.json("POST", `/runs/${this.runId}/rounds/${round}/update-url`, {
      token: this.token,
      idempotent: true,
    });
  }

  /**
   * fedavg: commits the staged update; the server checks its length, values and this SHA-256. Idempotent as
   * `upload` is: a repeat is refused with 409 duplicate_upload.
   */
  commitUpdate(
    round: number,
    sha256: string,
    examples: number,
    metrics: Record<string, number>,
  ): Promise<UploadReceipt> {
    return this.http.json("POST", this.uploadsPath(round, examples), {
      token: this.token,
      json: { sha256 },
      headers: { "x-ferret-metrics": JSON.stringify(metrics) },
      idempotent: true,
    });
  }

  private uploadsPath(round: number, examples: number): string {
    return `/runs/${this.runId}/rounds/${round}/uploads?examples=${examples}`;
  }
}

/** How operator requests authenticate: the local stack's admin token, or SigV4 (IAM) in AWS. */
export type OperatorAuth = { adminToken: string } | { sign: Signer };

export class OperatorApi {
  constructor(
    readonly http: Http,
    private readonly auth: OperatorAuth,
  ) {}

  private call<T>(method: string, path: string, idempotent: boolean, json?: unknown): Promise<T> {
    const auth = "adminToken" in this.auth ? { token: this.auth.adminToken } : { sign: this.auth.sign };
    return this.http.json<T>(method, path, { ...auth, json, idempotent });
  }

  /** Not idempotent: every call creates another run. */
  createRun(config: RunConfigInput): Promise<{ runId: string; config: RunConfig }> {
    return this.call("POST", "/runs", false, config);
  }

  status(runId: string): Promise<RunStatus> {
    return this.call("GET", `/runs/${runId}`, true);
  }

  /**
   * Idempotent in effect: a repeat starts another multipart upload to the same key, and the one left unused holds
   * no parts (the bucket's lifecycle rule aborts it).
   */
  startCheckpointUpload(runId: string, parts: number): Promise<{ uploadId: string; partUrls: string[] }> {
    return this.call("POST", `/runs/${runId}/checkpoint/uploads`, true, { parts });
  }

  /** Fresh presigned URLs of parts first..first+count−1 (the server gives at most as many as the start did). */
  async checkpointPartUrls(runId: string, uploadId: string, first: number, count: number): Promise<string[]> {
    const reply: { partUrls: string[] } = await this.call(
      "POST",
      `/runs/${runId}/checkpoint/uploads/${uploadId}/parts`,
      true,
      { first, count },
    );
    return reply.partUrls;
  }

  /**
   * Not idempotent: the import can outlast a gateway's timeout and go on running, and a repeat cannot complete the
   * same multipart upload again; it would fail and hide whether the first import took effect.
   */
  completeCheckpointUpload(
    runId: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
  ): Promise<{ checkpoint: number; shards: number; totalParams: number }> {
    return this.call("POST", `/runs/${runId}/checkpoint/uploads/${uploadId}/complete`, false, { parts });
  }

  /** Not idempotent: every call registers another client, whose token only its own reply shows. */
  addClient(runId: string, name: string): Promise<{ clientId: string; name: string; token: string }> {
    return this.call("POST", `/runs/${runId}/clients`, false, { name });
  }

  revokeClient(runId: string, clientId: string): Promise<{ clientId: string; revoked: true }> {
    return this.call("DELETE", `/runs/${runId}/clients/${clientId}`, true);
  }

  /**
   * Idempotent: the server moves the run to ACTIVE only from CREATED or PAUSED, so a repeat cannot open a second
   * round; it answers 409 already_active.
   */
  start(runId: string): Promise<Omit<RunRecord, "salt">> {
    return this.call("POST", `/runs/${runId}/start`, true);
  }

  /** Idempotent: the server moves the run to PAUSED only from ACTIVE; a repeat answers 409 not_active. */
  pause(runId: string): Promise<{ runId: string; status: "PAUSED" }> {
    return this.call("POST", `/runs/${runId}/pause`, true);
  }

  /**
   * Idempotent: the export is written only if it is not there yet; each call presigns a fresh URL to it. While the
   * server writes it (minutes for a large model, past the HTTP API's 30 s) the request is repeated every `pollMs`,
   * each wait told to `onWait`, for at most `waitMs`: by default a lapsed claim's 16 minutes (a Lambda that died
   * exporting) and another export's 15, with room to spare.
   */
  async exportCheckpoint(
    runId: string,
    checkpoint: number,
    { pollMs = 10_000, waitMs = 40 * 60_000, onWait = (_waitedMs: number) => {} } = {},
  ): Promise<{ checkpoint: number; url: string }> {
    const started = Date.now();
    for (;;) {
      const reply: { checkpoint: number; url?: string } = await this.call(
        "POST",
        `/runs/${runId}/rounds/${checkpoint}/export`,
        true,
      );
      if (reply.url !== undefined) return { checkpoint: reply.checkpoint, url: reply.url };
      const waited = Date.now() - started;
      if (waited >= waitMs) {
        throw new UnreachableError(
          `checkpoint ${checkpoint} of run ${runId} was still being exported after ${Math.round(waited / 1000)} s; ` +
            "expected it within the export Lambda's 15 minutes: ask again, and see that function's logs if it fails",
        );
      }
      onWait(waited);
      await sleep(pollMs);
    }
  }
}

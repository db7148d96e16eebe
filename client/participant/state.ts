// What a client keeps on disk so that a kill at any moment loses at most the training in progress:
//   state.json           — run, the checkpoint held, rounds already uploaded, an upload not yet acknowledged;
//   weights-<c>.f32      — the flat float32 weights of checkpoint c (never the locally trained weights);
//   pending-<r>.bin      — round r's upload body, written before it is sent: ferret's coefficients, fedkseed's
//                          (seed index, gradient) pairs, or fedavg's full update Δ (then PUT, then committed).
// Every file is written to a temporary name, flushed and renamed, and state.json is renamed last, so it only
// ever names complete files. A pending upload found at start is sent again, never recomputed: the server
// accepts it once and answers "duplicate_upload" to a repeat, which counts as done. The directory belongs to
// one client: another client's pending upload sent under a new token would be counted twice.
// Nothing is written before there is something to keep (the first checkpoint synced), so a client the server
// refuses (a wrong run or token) leaves no state behind that would bind the directory to that run or client.
import { open, readdir, readFile, rename, rm, rmdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { writableDirectory } from "../cli/output.ts";
import { flatVector } from "../sync/weights.ts";

export interface PendingUpload {
  round: number;
  examples: number;
  metrics: Record<string, number>;
  file: string;
}

export interface ClientState {
  version: 1;
  runId: string;
  /**
   * The key of the client whose uploads this directory records (the CLI's is the SHA-256 of its token, never
   * the token). Written with the first save after the loop claims the directory; absent in files written before
   * it was recorded.
   */
  client?: string;
  /** Checkpoint held in `weightsFile`, or null before the first sync. */
  checkpoint: number | null;
  weightsFile: string | null;
  /** Rounds whose upload the server acknowledged (kept short: the last few). */
  uploaded: number[];
  pending: PendingUpload | null;
}

/** The state directory holds something this version cannot use (another run, a damaged file). */
export class StateError extends Error {
  override name = "StateError";
}

/** A checkpoint or round number as it goes into a file name. Both come from the server, and a name built from
 * anything else ("../../x") would put a file outside the state directory. */
function fileNumber(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new StateError(`${what} ${JSON.stringify(n)} is not a whole number ≥ 0; nothing was written`);
  }
  return n;
}

/** Names of the files this directory holds besides state.json; any that state.json does not name is left over. */
const DATA_FILE = /^(?:weights-\d+\.f32|pending-\d+\.bin)$/;
/** writeAtomically's temporary names, ending in the writer's process id. */
const TEMPORARY_FILE = /^(?:state\.json|weights-\d+\.f32|pending-\d+\.bin)\.tmp-(\d+)$/;

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    const handle = await open(temporary, "w");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    // A model-sized temporary must not outlive a failed write (disk full, say). The write's error is the one
    // to report: should this removal fail too, StateDir.open removes the file on the next start.
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** Whether another live process wrote `pid`'s temporary files: its write may still be in progress. */
function anotherProcessRuns(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function isClientState(value: unknown): value is ClientState {
  const state = value as Partial<ClientState> | null;
  return (
    typeof state === "object" &&
    state !== null &&
    state.version === 1 &&
    typeof state.runId === "string" &&
    (state.checkpoint === null || Number.isInteger(state.checkpoint)) &&
    (state.weightsFile === null || typeof state.weightsFile === "string") &&
    Array.isArray(state.uploaded) &&
    (state.pending === null || typeof state.pending === "object")
  );
}

const asBytes = (values: Float32Array | Uint8Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** fs reads at most 2 GiB − 1 bytes a call. */
const READ_CHUNK_BYTES = 2 ** 30;

/**
 * The file's float32 values, or undefined when it is missing or not `expected` values long (the client then
 * resyncs). Read in place a chunk at a time: readFile stops at 2 GiB, which made every model over 537M parameters
 * download its checkpoint again at each start. Any other failure to read it is thrown.
 */
export async function readFloats(
  path: string,
  expected: number,
  chunkBytes = READ_CHUNK_BYTES,
): Promise<Float32Array | undefined> {
  const handle = await open(path, "r").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!handle) return undefined;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new StateError(`${path} is not a file; expected the saved weights`);
    if (info.size !== expected * 4) return undefined;
    const values = flatVector(expected);
    const bytes = asBytes(values);
    for (let at = 0; at < bytes.byteLength; ) {
      const length = Math.min(chunkBytes, bytes.byteLength - at);
      const { bytesRead } = await handle.read(bytes, at, length, at);
      if (bytesRead === 0)
        throw new StateError(`${path} ended at byte ${at} of ${bytes.byteLength} while read`);
      at += bytesRead;
    }
    return values;
  } finally {
    await handle.close();
  }
}

export class StateDir {
  /** A pending upload that claim() dropped from the state, whose file goes once state.json stops naming it. */
  private dropped?: string;

  private constructor(
    readonly dir: string,
    private state: ClientState,
    /** The first directory open() created on the way to `dir`, if any. */
    private readonly created: string | undefined,
  ) {}

  /**
   * Opens (or starts) the state of `runId` in `dir`; a directory used for another run, or one that cannot be
   * written, is refused. Files a kill or a failed write left behind (temporaries, weights or a body that
   * state.json no longer names) are removed.
   */
  static async open(dir: string, runId: string): Promise<StateDir> {
    const created = await writableDirectory("--state", dir);
    const path = join(dir, "state.json");
    // Only a missing file is a fresh start: an unreadable one must not be taken for it (its upload would be lost).
    const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    let parsed: unknown;
    try {
      parsed =
        text === undefined
          ? { version: 1, runId, checkpoint: null, weightsFile: null, uploaded: [], pending: null }
          : JSON.parse(text);
    } catch {
      throw new StateError(`${path} is not JSON; remove the directory to start afresh`);
    }
    if (!isClientState(parsed)) {
      throw new StateError(
        `${path} is not a client state (expected version 1 with runId, checkpoint, weightsFile, uploaded and ` +
          "pending); remove the directory to start afresh",
      );
    }
    const state = parsed;
    if (state.runId !== runId) {
      throw new StateError(
        `${dir} holds the state of run ${state.runId}; use another --state directory for run ${runId}`,
      );
    }
    const opened = new StateDir(dir, state, created);
    await opened.removeLeftovers();
    return opened;
  }

  /**
   * Removes the directories open() created, when nothing was written to them (the server refused the client,
   * say): a mistyped token or run leaves no directory behind. Directories that hold anything stay.
   */
  async removeIfUnused(): Promise<void> {
    if (this.created === undefined) return;
    const removed = (path: string) =>
      rmdir(path).then(
        () => true,
        () => false,
      );
    // rmdir removes empty directories only: another process's files, or this one's state, keep theirs.
    for (let path = resolve(this.dir); await removed(path); path = dirname(path)) {
      if (path === resolve(this.created)) return;
    }
  }

  private async removeLeftovers(): Promise<void> {
    const named = new Set([this.state.weightsFile, this.state.pending?.file]);
    for (const name of await readdir(this.dir)) {
      const temporary = TEMPORARY_FILE.exec(name);
      const leftover = temporary
        ? !anotherProcessRuns(Number(temporary[1]))
        : DATA_FILE.test(name) && !named.has(name);
      if (leftover) await rm(join(this.dir, name), { force: true });
    }
  }

  /**
   * Binds the directory to the client with key `client`. Another client's saved upload must not be sent as
   * this one's (the aggregate would count it twice), nor its uploaded rounds skipped: such a directory is refused.
   * `namedForClient`: the directory's own name proves it this client's (the CLI's default is named after the
   * token's hash), so a state written before owners were recorded keeps its upload. The claim is written with
   * the first thing saved, which the client saves only once the server has answered it.
   */
  async claim(client: string, namedForClient = false): Promise<void> {
    const owner = this.state.client;
    if (owner === client) return;
    if (owner !== undefined) {
      throw new StateError(
        `${this.dir} belongs to another client of run ${this.state.runId} (key ${owner.slice(0, 12)}…; ` +
          `this client's is ${client.slice(0, 12)}…, the SHA-256 of its token); its saved upload is not this ` +
          "client's to send. Use another --state directory for this token (without --state, each token gets its own)",
      );
    }
    if (namedForClient) {
      this.state = { ...this.state, client };
      return;
    }
    // No owner, in a directory the user named: a new one, or one written before owners were recorded, whose
    // pending upload and uploaded rounds cannot be shown to be this client's: they are dropped. At worst this
    // client trains a round again, and the server answers a repeat with duplicate_upload. The weights stay:
    // every sync checks them against the manifest.
    this.dropped = this.state.pending?.file;
    this.state = { ...this.state, client, uploaded: [], pending: null };
  }

  get current(): Readonly<ClientState> {
    return this.state;
  }

  private async commit(next: ClientState): Promise<void> {
    await writeAtomically(join(this.dir, "state.json"), `${JSON.stringify(next, null, 2)}\n`);
    this.state = next;
    const dropped = this.dropped;
    this.dropped = undefined;
    if (dropped && dropped !== next.pending?.file) await rm(join(this.dir, dropped), { force: true });
  }

  /** The weights of the checkpoint held, or undefined when none (or the file is unusable: resync). */
  async weights(totalParams: number): Promise<{ checkpoint: number; values: Float32Array } | undefined> {
    const { checkpoint, weightsFile } = this.state;
    if (checkpoint === null || weightsFile === null) return undefined;
    const values = await readFloats(join(this.dir, weightsFile), totalParams);
    return values && { checkpoint, values };
  }

  async saveWeights(checkpoint: number, values: Float32Array): Promise<void> {
    if (checkpoint === this.state.checkpoint) return;
    const file = `weights-${fileNumber(checkpoint, "checkpoint")}.f32`;
    await writeAtomically(join(this.dir, file), asBytes(values));
    const previous = this.state.weightsFile;
    // The old file goes only after state.json stops naming it; a kill in between leaves it to open() to remove.
    await this.commit({ ...this.state, checkpoint, weightsFile: file });
    if (previous && previous !== file) await rm(join(this.dir, previous), { force: true });
  }

  hasUploaded(round: number): boolean {
    return this.state.uploaded.includes(round);
  }

  /** Records the upload body of round `round` before it is sent. */
  async savePending(
    round: number,
    body: Float32Array | Uint8Array,
    examples: number,
    metrics: Record<string, number>,
  ) {
    const file = `pending-${fileNumber(round, "round")}.bin`;
    await writeAtomically(join(this.dir, file), asBytes(body));
    await this.commit({ ...this.state, pending: { round, examples, metrics, file } });
  }

  /** Path of the pending body when it holds exactly `bytes` bytes (else undefined: train again). */
  async pendingFile(bytes: number): Promise<string | undefined> {
    const pending = this.state.pending;
    if (!pending) return undefined;
    const path = join(this.dir, pending.file);
    const size = await stat(path).then(
      (s) => s.size,
      () => -1,
    );
    return size === bytes ? path : undefined;
  }

  /** The pending body when it holds exactly `bytes` bytes. */
  async pendingBody(bytes: number): Promise<Uint8Array | undefined> {
    const path = await this.pendingFile(bytes);
    return path === undefined ? undefined : new Uint8Array(await readFile(path));
  }

  /** The server has round `round`'s upload (accepted now or earlier): forget the pending copy. */
  async markUploaded(round: number): Promise<void> {
    const pending = this.state.pending;
    const uploaded = [...this.state.uploaded.filter((r) => r !== round), round].slice(-16);
    await this.commit({ ...this.state, uploaded, pending: pending?.round === round ? null : pending });
    if (pending?.round === round) await rm(join(this.dir, pending.file), { force: true });
  }

  /** Drops a pending upload the server can no longer take (its round closed). */
  async dropPending(): Promise<void> {
    const pending = this.state.pending;
    if (!pending) return;
    await this.commit({ ...this.state, pending: null });
    await rm(join(this.dir, pending.file), { force: true });
  }
}

// What a client keeps on disk so that a kill at any moment loses at most the training in progress:
//   state.json           — run, the checkpoint held, rounds already uploaded, an upload not yet acknowledged;
//   weights-<c>.f32      — the flat float32 weights of checkpoint c (never the locally trained weights);
//   pending-<r>.bin      — round r's upload body, written before it is sent: ferret's coefficients, fedkseed's
//                          (seed index, gradient) pairs, or fedavg's full update Δ (then PUT, then committed).
// Every file is written to a temporary name, flushed and renamed, and state.json is renamed last, so it only
// ever names complete files. A pending upload found at start is sent again, never recomputed: the server
// accepts it once and answers "duplicate_upload" to a repeat, which counts as done.
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";

export interface PendingUpload {
  round: number;
  examples: number;
  metrics: Record<string, number>;
  file: string;
}

export interface ClientState {
  version: 1;
  runId: string;
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

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  const handle = await open(temporary, "w");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

const asBytes = (values: Float32Array | Uint8Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

async function readFloats(path: string, expected: number): Promise<Float32Array | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes || bytes.byteLength !== expected * 4) return undefined;
  const values = new Float32Array(expected);
  asBytes(values).set(bytes);
  return values;
}

export class StateDir {
  private constructor(
    readonly dir: string,
    private state: ClientState,
  ) {}

  /** Opens (or starts) the state of `runId` in `dir`; a directory used for another run is refused. */
  static async open(dir: string, runId: string): Promise<StateDir> {
    await mkdir(dir, { recursive: true });
    const text = await readFile(join(dir, "state.json"), "utf8").catch(() => undefined);
    if (text === undefined) {
      return new StateDir(dir, {
        version: 1,
        runId,
        checkpoint: null,
        weightsFile: null,
        uploaded: [],
        pending: null,
      });
    }
    let state: ClientState;
    try {
      state = JSON.parse(text) as ClientState;
    } catch {
      throw new StateError(`${join(dir, "state.json")} is not JSON; remove the directory to start afresh`);
    }
    if (state.version !== 1 || state.runId !== runId) {
      throw new StateError(
        `${dir} holds the state of run ${state.runId}; use another --state directory for run ${runId}`,
      );
    }
    return new StateDir(dir, state);
  }

  get current(): Readonly<ClientState> {
    return this.state;
  }

  private async commit(next: ClientState): Promise<void> {
    await writeAtomically(join(this.dir, "state.json"), `${JSON.stringify(next, null, 2)}\n`);
    this.state = next;
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
    const file = `weights-${checkpoint}.f32`;
    await writeAtomically(join(this.dir, file), asBytes(values));
    const previous = this.state.weightsFile;
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
    const file = `pending-${round}.bin`;
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

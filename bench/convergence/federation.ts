// One benchmark entry as real infrastructure: a run created through the operator API on the local stack, its
// clients running the participant loop (client/participant) in this process, each with its own HTTP client and
// byte counters, state directory and ONNX Runtime trainer, until the last round's checkpoint is committed.
import { join } from "node:path";
import { Http } from "../../client/api/http.ts";
import { ClientApi, OperatorApi } from "../../client/api/routes.ts";
import { Output } from "../../client/cli/output.ts";
import { createRun, type RunOptions } from "../../client/cli/run.ts";
import type { ModelConfig } from "../../client/models/index.ts";
import { type ClientEvent, runClient, type Trainer } from "../../client/participant/loop.ts";
import { StateDir } from "../../client/participant/state.ts";
import { type LocalData, LocalTrainer } from "../../client/participant/trainer.ts";
import type { RoundPoint } from "./results.ts";

/** One entry: a name and the run it creates. */
export interface Entry {
  name: string;
  options: RunOptions;
}

export interface ClientData {
  name: string;
  data: LocalData;
}

export interface Federation {
  endpoint: string;
  adminToken: string;
  modelDir: string;
  config: ModelConfig;
  clients: ClientData[];
  rounds: number;
  stateRoot: string;
  /** Seconds from close to commit of each round, by `${runId}/${round}` (the local orchestrator reports them). */
  aggregation: Map<string, number>;
  log: (message: string) => void;
}

/** Everything measured per round except eval loss, which the benchmark measures afterwards on the checkpoints. */
export type RoundCost = Omit<RoundPoint, "evalLoss">;

/**
 * All clients share this process's one event loop, and ONNX Runtime runs a session synchronously on it, so
 * concurrent clients would interleave their steps and each would time the others' work. A lock gives one
 * client the whole machine at a time, as if each had its own, and its training time is its own.
 */
class ComputeLock {
  private tail: Promise<void> = Promise.resolve();
  async hold<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release = () => {};
    this.tail = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await work();
    } finally {
      release();
    }
  }
}

/** The client's trainer, serialized by the lock, with the seconds each round's training took. */
class TimedTrainer implements Trainer {
  readonly trainingSeconds = new Map<number, number>();
  constructor(
    private readonly inner: Trainer,
    private readonly lock: ComputeLock,
  ) {}
  get examples() {
    return this.inner.examples;
  }
  evalLoss(values: Float32Array) {
    return this.lock.hold(() => this.inner.evalLoss(values));
  }
  private timed<T>(round: number, work: () => Promise<T>): Promise<T> {
    return this.lock.hold(async () => {
      const started = performance.now();
      const result = await work();
      this.trainingSeconds.set(round, (performance.now() - started) / 1000);
      return result;
    });
  }
  trainSteps(...args: Parameters<Trainer["trainSteps"]>) {
    return this.timed(args[1], () => this.inner.trainSteps(...args));
  }
  zerothOrderSteps(...args: Parameters<Trainer["zerothOrderSteps"]>) {
    return this.timed(args[1], () => this.inner.zerothOrderSteps(...args));
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

export async function runEntry(
  fed: Federation,
  entry: Entry,
): Promise<{ runId: string; rounds: RoundCost[] }> {
  const operator = new OperatorApi(new Http(fed.endpoint), { adminToken: fed.adminToken });
  const created = await createRun(operator, new Output(false), fed.modelDir, entry.options);
  const { runId } = created;
  const registered: { clientId: string; token: string }[] = [];
  for (const c of fed.clients) registered.push(await operator.addClient(runId, c.name));
  await operator.start(runId);
  const lock = new ComputeLock();
  const roundEvents = fed.clients.map(() => new Map<number, Extract<ClientEvent, { event: "round" }>>());
  // Bytes down of each client's sync to each checkpoint. A round's "round" event counts the sync to the
  // checkpoint it trains from; the round is charged instead with the sync to the checkpoint it produces, so
  // fetching the base model (checkpoint 0), which every strategy pays alike once, is no round's cost.
  const syncedDown = fed.clients.map(() => new Map<number, number>());
  const trainers: TimedTrainer[] = [];
  const rounds: RoundCost[] = [];
  const report = () => {
    for (let r = rounds.length; r < fed.rounds; r++) {
      const aggregateSeconds = fed.aggregation.get(`${runId}/${r}`);
      const events = roundEvents.map((m) => m.get(r));
      const seconds = trainers.map((t) => t.trainingSeconds.get(r));
      const down = events.map((e, i) => {
        const [from, to] = [syncedDown[i]?.get(r), syncedDown[i]?.get(r + 1)];
        return e && from !== undefined && to !== undefined ? e.bytesDown - from + to : undefined;
      });
      if (
        aggregateSeconds === undefined ||
        events.some((e) => !e) ||
        seconds.some((s) => s === undefined) ||
        down.some((d) => d === undefined)
      )
        return;
      const cost: RoundCost = {
        round: r + 1,
        localSeconds: mean(seconds as number[]),
        aggregateSeconds,
        bytesUp: mean(events.map((e) => e?.bytesUp as number)),
        bytesDown: mean(down as number[]),
        trainLoss: mean(events.map((e) => e?.trainLoss as number)),
      };
      rounds.push(cost);
      fed.log(
        `  ${entry.name} round ${r + 1}/${fed.rounds}: train loss ${cost.trainLoss.toFixed(4)}, ` +
          `up ${Math.round(cost.bytesUp)} B, down ${Math.round(cost.bytesDown)} B per client, ` +
          `local ${cost.localSeconds.toFixed(2)} s, aggregation ${aggregateSeconds.toFixed(2)} s`,
      );
    }
  };
  const reporter = setInterval(report, 100);
  try {
    await Promise.all(
      fed.clients.map(async (client, i) => {
        const { clientId, token } = registered[i] as { clientId: string; token: string };
        await runClient({
          api: new ClientApi(new Http(fed.endpoint), runId, token),
          clientKey: clientId,
          state: await StateDir.open(join(fed.stateRoot, runId, String(i)), runId),
          sync: "replay",
          pollMs: 100,
          untilCheckpoint: fed.rounds,
          trainer: async (assignment) => {
            const inner = await LocalTrainer.create(fed.config, assignment.plan, client.data, {
              device: "cpu",
              batchSize: assignment.localSteps.batchSize,
            });
            const timed = new TimedTrainer(inner, lock);
            trainers[i] = timed;
            return timed;
          },
          emit: (event) => {
            if (event.event === "round") roundEvents[i]?.set(event.round, event);
            if (event.event === "synced") syncedDown[i]?.set(event.checkpoint, event.bytesDown);
          },
        });
      }),
    );
    report();
  } finally {
    clearInterval(reporter);
    await operator.pause(runId).catch(() => undefined);
  }
  if (rounds.length !== fed.rounds) {
    throw new Error(`${entry.name}: measured ${rounds.length} of ${fed.rounds} rounds; a client skipped one`);
  }
  return { runId, rounds };
}

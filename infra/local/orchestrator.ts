// The local stand-in for Step Functions and EventBridge Scheduler: the same three steps in the same order
// (aggregate -> every shard in worker threads -> commit), with retries and the same catch that marks FAILED.
import {
  aggregateRound,
  commitRound,
  failAggregation,
  type RoundRef,
  type ShardTask,
} from "../../functions/rounds/aggregation.ts";
import { closeAtDeadline } from "../../functions/rounds/lifecycle.ts";
import type { ShardOutcome } from "../../functions/rounds/manifest.ts";
import { PERMANENT_STEP_ERRORS } from "../../functions/rounds/step-errors.ts";
import type { Platform, Services } from "../../functions/services.ts";
import type { ShardPool } from "./shard-pool.ts";

/** Step boundaries a test may break at, to prove a re-run repairs whatever was left. */
export type Boundary = "aggregated" | `shard-${number}` | "shards-done";

export interface OrchestratorOptions {
  /** Attempts per step before the round is marked FAILED (the state machine's retry policy). */
  attempts: number;
  /** Called at each boundary; throwing there simulates a crash (the round stays AGGREGATING, nothing is caught). */
  crashAt?: (boundary: Boundary) => void;
  /** Called when a round commits, with the seconds from its close (startAggregation) to the commit. */
  onCommitted?: (ref: RoundRef, seconds: number) => void;
}

export class Crash extends Error {
  override name = "Crash";
}

export class LocalOrchestrator implements Platform {
  private readonly running = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Rounds (`runId:round`) being aggregated, and rounds with a deadline timer: a second start or schedule of
   * the same round (a repair after a crash) is a no-op, as Step Functions' and EventBridge's per-round names make
   * it in AWS. */
  private readonly aggregating = new Set<string>();
  private readonly deadlines = new Set<string>();
  readonly started: RoundRef[] = [];
  readonly crashes: Error[] = [];
  /** Every shard task's outcome, kept so tests can check what each task held. */
  readonly shardResults: ShardOutcome[] = [];
  svc!: Services;

  constructor(
    private readonly pool: ShardPool,
    readonly options: OrchestratorOptions,
  ) {}

  async startAggregation(runId: string, round: number): Promise<void> {
    const key = `${runId}:${round}`;
    if (this.aggregating.has(key)) return;
    this.aggregating.add(key);
    this.started.push({ runId, round });
    const closed = performance.now();
    this.track(
      this.aggregate({ runId, round })
        .then(() => this.options.onCommitted?.({ runId, round }, (performance.now() - closed) / 1000))
        .finally(() => this.aggregating.delete(key)),
    );
  }

  async scheduleDeadline(runId: string, round: number, deadline: number): Promise<void> {
    const key = `${runId}:${round}`;
    if (this.deadlines.has(key)) return;
    this.deadlines.add(key);
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        this.deadlines.delete(key);
        this.track(this.fireDeadline(runId, round, deadline));
      },
      Math.min(Math.max(0, deadline - this.svc.now()), 2 ** 31 - 1),
    );
    timer.unref();
    this.timers.add(timer);
  }

  private async fireDeadline(runId: string, round: number, deadline: number): Promise<void> {
    const outcome = await closeAtDeadline(this.svc, runId, round);
    if (outcome.action === "early") await this.scheduleDeadline(runId, round, deadline);
  }

  private track(work: Promise<void>) {
    const tracked = work.catch((error: Error) => {
      this.crashes.push(error);
    });
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
  }

  /** Resolves when no aggregation or deadline work is in flight. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  /** Runs (or re-runs) the whole state machine for one round. */
  async aggregate(ref: RoundRef): Promise<void> {
    const crashAt = this.options.crashAt ?? (() => {});
    try {
      const tasks = await this.step(() => aggregateRound(this.svc, ref));
      crashAt("aggregated");
      await Promise.all(
        tasks.map(async (task: ShardTask) => {
          this.shardResults.push(await this.step(() => this.pool.run(task)));
          crashAt(`shard-${task.shard.index}`);
        }),
      );
      crashAt("shards-done");
      if (tasks.length > 0) await this.step(() => commitRound(this.svc, ref));
    } catch (error) {
      if (error instanceof Crash) throw error;
      await failAggregation(this.svc, ref, (error as Error).message.slice(0, 1000));
      throw error;
    }
  }

  private async step<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (attempt >= this.options.attempts || PERMANENT_STEP_ERRORS.includes((error as Error).name))
          throw error;
      }
    }
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.deadlines.clear();
  }
}

// npm run bench:aggregate [-- --params N --families sketch,rademacher,gaussian] — end-to-end aggregation of a
// 100M-parameter checkpoint on the local stack (DynamoDB Local, s3rver, worker-thread shard tasks) with 1, 2 and
// all threads, for every basis family, beside two baselines measured in the same run: core's raw reconstruction of
// the same model (same family, same plan) and the storage floor, the same shards moved through the same storage
// path with no reconstruction. Writes bench/results/aggregate.json and prints a table.
//
// Latency is from the upload that meets the quorum to the round's commit: closing the round, aggregating the
// coefficients, every shard task (read base shard from S3, reconstruct, hash, write), the manifest and the
// commit. A cheap family (sketch) shows the storage path's cost, an expensive one (gaussian) reconstruction's.
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { buildPlan, CorePool, FAMILIES, type Family, sharedFloat32Array } from "../core/index.ts";
import type { Plan } from "../core/plan.ts";
import { readManifest } from "../functions/rounds/aggregation.ts";
import { shardSpecsOf } from "../functions/rounds/manifest.ts";
import { objectKeys } from "../functions/storage/objects.ts";
import { type LocalStack, startLocalStack } from "../infra/local/stack.ts";
import { Api, bytesOf, createRun, type Model, type Run, tinyModel } from "../test/integration/harness.ts";
import { describeMachine, type Timing, timeOnceIfLong } from "./machine.ts";
import { storageFloorSeconds } from "./storage-floor.ts";

const TENSORS = 25; // each tensor is a block and each block a shard: 4M parameters at the default 100M
const ROWS = 2000;
const TOTAL_K = 4096;
const CLIENTS = 3;
/** Cheapest first, so that the figures that come quickly come first. */
const DEFAULT_FAMILIES: Family[] = ["sketch", "rademacher", "gaussian"];
const GOAL = 0.5;
/** A core run at least this long is timed once (gaussian at 100M parameters takes about a minute a thread). */
const SINGLE_RUN_SECONDS = 3;

const log = (message: string) => process.stderr.write(`${message}\n`);

class UsageError extends Error {
  override name = "UsageError";
}

function options() {
  const { values } = parseArgs({
    options: { params: { type: "string", default: "100000000" }, families: { type: "string" } },
  });
  const params = Number(values.params);
  const layout = TENSORS * ROWS;
  if (!Number.isSafeInteger(params) || params <= 0 || params % layout !== 0) {
    throw new UsageError(
      `--params is ${values.params}; expected a positive multiple of ${layout}: ${TENSORS} tensors of ${ROWS} ` +
        "rows, each one block and one shard",
    );
  }
  const families = (values.families?.split(",") ?? DEFAULT_FAMILIES) as Family[];
  const unknown = families.filter((f) => !FAMILIES.includes(f));
  if (unknown.length > 0 || families.length === 0) {
    throw new UsageError(
      `--families has ${unknown.join(", ") || "nothing"}; expected some of ${FAMILIES.join(", ")}`,
    );
  }
  return { params, families: [...new Set(families)] };
}

/** One round of `run`, from the upload that meets the quorum to the commit. */
async function aggregationSeconds(stack: LocalStack, api: Api, run: Run): Promise<number> {
  let started = 0n;
  for (const [i, client] of run.clients.entries()) {
    const coefficients = Float32Array.from({ length: TOTAL_K }, (_, k) => Math.cos(k + i) / 100);
    if (i === CLIENTS - 1) started = process.hrtime.bigint();
    const reply = await api.call("POST", `/runs/${run.runId}/rounds/0/uploads?examples=${10 + i}`, {
      token: client.token,
      bytes: bytesOf(coefficients),
    });
    if (reply.status !== 202) throw new Error(`upload ${i} refused: ${JSON.stringify(reply.body)}`);
  }
  const before = stack.orchestrator.shardResults.length;
  const progress = setInterval(
    () => log(`    ${stack.orchestrator.shardResults.length - before}/${run.plan.blocks.length} shards`),
    10_000,
  );
  try {
    await stack.orchestrator.idle();
  } finally {
    clearInterval(progress);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const round = await stack.services.table.getRound(run.runId, 0);
  if (round?.state !== "DONE")
    throw new Error(`round 0 ended ${round?.state}: ${JSON.stringify(stack.orchestrator.crashes)}`);
  return seconds;
}

interface Row {
  family: Family;
  threads: number;
  seconds: number;
  paramsPerSec: number;
  /** Against core's reconstruction of the same family with all threads. */
  ratioToCore: number;
  coreParamsPerSecSameThreads: number;
  storageFloorSeconds: number;
  /** storageFloorSeconds / seconds: 1 would be a round that costs no more than moving its shards. */
  ratioToStorageFloor: number;
}

/** Every family's round on one stack of `threads` shard workers, then the storage floor on the same stack. */
async function endToEnd(model: Model, families: Family[], plan: Plan, threads: number) {
  const stack = await startLocalStack({ threads, shardParams: plan.totalParams / TENSORS });
  try {
    const api = new Api(stack);
    const measured: { family: Family; seconds: number }[] = [];
    let last: Run | undefined;
    for (const family of families) {
      log(`  threads=${threads}, ${family}: uploading the ${model.weights.byteLength / 1e6} MB checkpoint…`);
      const uploadStart = performance.now();
      const config = { basis: family, totalK: TOTAL_K, clientsPerRound: CLIENTS, quorum: CLIENTS };
      last = await createRun(api, model, { ...config, minUploads: CLIENTS }, CLIENTS);
      if (JSON.stringify(last.plan) !== JSON.stringify(plan)) throw new Error("the run's plan is not core's");
      const uploadSeconds = (performance.now() - uploadStart) / 1000;
      log(`  threads=${threads}, ${family}: uploaded in ${uploadSeconds.toFixed(1)} s, aggregating…`);
      const seconds = await aggregationSeconds(stack, api, last);
      measured.push({ family, seconds });
      log(`  threads=${threads}, ${family}: ${seconds.toFixed(2)} s`);
    }
    const { runId } = last as Run;
    const shards = shardSpecsOf(await readManifest(stack.services, runId, 0), plan);
    const tasks = shards.map((shard) => ({
      shard,
      from: objectKeys.shard(runId, 0, shard.index),
      to: `bench/storage-floor/${runId}/${shard.index}.bin`,
    }));
    const floor = await storageFloorSeconds(stack.env, plan, tasks, threads);
    log(`  threads=${threads}: storage floor ${floor.toFixed(2)} s`);
    return { measured, floor, shards: shards.length };
  } finally {
    await stack.close();
  }
}

const tensorsOf = (params: number) =>
  Array.from({ length: TENSORS }, (_, i) => ({
    name: `layers.${i}.weight`,
    shape: [ROWS, params / TENSORS / ROWS],
  }));

interface CoreTiming extends Timing {
  family: Family;
  threads: number;
  paramsPerSec: number;
}

async function measureCore(plan: Plan, families: Family[], threadCounts: number[]): Promise<CoreTiming[]> {
  const core: CoreTiming[] = [];
  const weights = sharedFloat32Array(plan.totalParams).fill(0.25);
  const coefficients = Float32Array.from({ length: TOTAL_K }, (_, k) => Math.sin(k));
  for (const threads of threadCounts) {
    const pool = new CorePool(threads);
    try {
      for (const family of families) {
        const timing = await timeOnceIfLong(3, SINGLE_RUN_SECONDS, () =>
          pool.reconstruct(weights, coefficients, 42n, plan, family, 0.01),
        );
        core.push({ family, threads, paramsPerSec: plan.totalParams / timing.seconds, ...timing });
        log(
          `core reconstruct, ${family}, ${threads} thread(s): ${timing.seconds.toFixed(3)} s (${timing.statistic})`,
        );
      }
    } finally {
      await pool.close();
    }
  }
  return core;
}

/** Per family: the best end-to-end ratio to core, and the best that moving the shards alone would allow. */
function goalsOf(families: Family[], results: Row[], coreAll: (family: Family) => number, params: number) {
  return Object.fromEntries(
    families.map((family) => {
      const rows = results.filter((r) => r.family === family);
      const best = rows.reduce((a, b) => (b.ratioToCore > a.ratioToCore ? b : a));
      const fastestFloor = Math.min(...rows.map((r) => r.storageFloorSeconds));
      return [
        family,
        {
          bestRatioToCore: best.ratioToCore,
          threads: best.threads,
          met: best.ratioToCore >= GOAL,
          storageFloorRatioToCore: params / fastestFloor / coreAll(family),
        },
      ];
    }),
  );
}

async function main(): Promise<void> {
  const { params, families } = options();
  const cores = availableParallelism();
  const threadCounts = [...new Set([1, 2, cores])];
  const plan = buildPlan(tensorsOf(params), { totalK: TOTAL_K });
  const core = await measureCore(plan, families, threadCounts);
  const coreOf = (family: Family, threads: number) =>
    (core.find((c) => c.family === family && c.threads === threads) as CoreTiming).paramsPerSec;
  const coreAll = (family: Family) => coreOf(family, cores);

  const model = tinyModel(tensorsOf(params));
  const results: Row[] = [];
  let shards = 0;
  for (const threads of threadCounts) {
    const measured = await endToEnd(model, families, plan, threads);
    shards = measured.shards;
    for (const { family, seconds } of measured.measured) {
      const paramsPerSec = params / seconds;
      results.push({
        family,
        threads,
        seconds,
        paramsPerSec,
        ratioToCore: paramsPerSec / coreAll(family),
        coreParamsPerSecSameThreads: coreOf(family, threads),
        storageFloorSeconds: measured.floor,
        ratioToStorageFloor: measured.floor / seconds,
      });
    }
  }
  const goals = goalsOf(families, results, coreAll, params);
  const report = {
    machine: describeMachine(),
    params,
    shards,
    shardParams: params / TENSORS,
    totalK: TOTAL_K,
    families,
    coreParamsPerSec: Object.fromEntries(families.map((f) => [f, coreAll(f)])),
    statistics: {
      core: `per entry of core[]: a run of ${SINGLE_RUN_SECONDS} s or more is timed once, a shorter one is the median of 3 after a warm-up run`,
      seconds: "one round each (single run)",
      storageFloorSeconds: "one pass over every shard (single run)",
    },
    core,
    results,
    goal: { ratioToCore: GOAL, byFamily: goals },
  };
  writeFileSync(new URL("results/aggregate.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
  console.table(
    results.map((r) => ({
      family: r.family,
      threads: r.threads,
      seconds: r.seconds.toFixed(2),
      "params/s": r.paramsPerSec.toExponential(3),
      "× core (all threads)": r.ratioToCore.toFixed(3),
      "× storage floor": r.ratioToStorageFloor.toFixed(3),
    })),
  );
  for (const [family, goal] of Object.entries(goals)) {
    console.log(
      `goal ${family} (end-to-end ≥ ${GOAL} × core's reconstruction with all threads): ` +
        `${goal.met ? "met" : "NOT met"}, best ${goal.bestRatioToCore.toFixed(3)} × core with ${goal.threads} ` +
        `thread(s); moving the shards alone (the storage floor) allows at most ` +
        `${goal.storageFloorRatioToCore.toFixed(3)} × core`,
    );
  }
}

try {
  await main();
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(error.message);
  process.exitCode = 2;
}

// npm run bench:aggregate — end-to-end aggregation of a 100M-parameter checkpoint on the local stack (DynamoDB
// Local, s3rver, worker-thread shard tasks) with 1, 2 and all threads, beside core's raw reconstruction of the
// same model measured in the same run. Writes bench/results/aggregate.json and prints a table.
//
// Latency is from the upload that meets the quorum to the round's commit: closing the round, aggregating the
// coefficients, every shard task (read base shard from S3, reconstruct, hash, write), the manifest and the
// commit. The family is `sketch`, whose reconstruction is cheapest, so storage overheads show most.
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { buildPlan, CorePool, sharedFloat32Array } from "../core/index.ts";
import { startLocalStack } from "../infra/local/stack.ts";
import { Api, bytesOf, createRun, tinyModel } from "../test/integration/harness.ts";
import { describeMachine, medianSeconds } from "./machine.ts";

const PARAMS = 100_000_000;
const TENSORS = 25; // 4M parameters each: each tensor is a block, each block a shard
const TOTAL_K = 4096;
const CLIENTS = 3;
const SHARD_PARAMS = 4 * 1024 * 1024;

const tensors = Array.from({ length: TENSORS }, (_, i) => ({
  name: `layers.${i}.weight`,
  shape: [2000, PARAMS / TENSORS / 2000],
}));
const log = (message: string) => process.stderr.write(`${message}\n`);

async function coreParamsPerSec(threads: number): Promise<number> {
  const plan = buildPlan(tensors, { totalK: TOTAL_K });
  const weights = sharedFloat32Array(PARAMS).fill(0.25);
  const coefficients = Float32Array.from({ length: TOTAL_K }, (_, k) => Math.sin(k));
  const pool = new CorePool(threads);
  try {
    const seconds = await medianSeconds(3, () =>
      pool.reconstruct(weights, coefficients, 42n, plan, "sketch", 0.01),
    );
    return PARAMS / seconds;
  } finally {
    await pool.close();
  }
}

async function aggregationSeconds(threads: number): Promise<{ seconds: number; shards: number }> {
  const stack = await startLocalStack({ threads, shardParams: SHARD_PARAMS });
  try {
    const api = new Api(stack);
    log(`  threads=${threads}: uploading the 400 MB checkpoint…`);
    const run = await createRun(
      api,
      tinyModel(tensors),
      { basis: "sketch", totalK: TOTAL_K, clientsPerRound: CLIENTS, quorum: CLIENTS, minUploads: CLIENTS },
      CLIENTS,
    );
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
    log(`  threads=${threads}: quorum met, aggregating…`);
    await stack.orchestrator.idle();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const round = await stack.services.table.getRound(run.runId, 0);
    if (round?.state !== "DONE")
      throw new Error(`round 0 ended ${round?.state}: ${JSON.stringify(stack.orchestrator.crashes)}`);
    return { seconds, shards: stack.orchestrator.shardResults.length };
  } finally {
    await stack.close();
  }
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const threadCounts = [...new Set([1, 2, cores])];
  const core = new Map<number, number>();
  for (const threads of threadCounts) {
    core.set(threads, await coreParamsPerSec(threads));
    log(`core reconstruct, ${threads} thread(s): ${(core.get(threads) as number).toExponential(3)} params/s`);
  }
  const coreAll = core.get(cores) as number;
  const results = [];
  let shards = 0;
  for (const threads of threadCounts) {
    const measured = await aggregationSeconds(threads);
    shards = measured.shards;
    const paramsPerSec = PARAMS / measured.seconds;
    results.push({
      threads,
      seconds: measured.seconds,
      paramsPerSec,
      ratioToCore: paramsPerSec / coreAll,
      coreParamsPerSecSameThreads: core.get(threads),
    });
  }
  const report = {
    machine: describeMachine(),
    params: PARAMS,
    shards,
    family: "sketch",
    totalK: TOTAL_K,
    coreParamsPerSec: coreAll,
    results,
  };
  writeFileSync(new URL("results/aggregate.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
  console.table(
    results.map((r) => ({
      threads: r.threads,
      seconds: r.seconds.toFixed(2),
      "params/s": r.paramsPerSec.toExponential(3),
      "× core (all threads)": r.ratioToCore.toFixed(3),
    })),
  );
  const best = Math.max(...results.map((r) => r.ratioToCore));
  console.log(`goal: end-to-end aggregation ≥ 0.5 × core's raw reconstruction — best ${best.toFixed(3)}`);
}

await main();

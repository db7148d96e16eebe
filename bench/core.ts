// npm run bench:core — projection and reconstruction throughput of every family against memcpy of the same
// float32 buffer, measured in the same run; writes bench/results/core.json and prints a table.
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { buildPlan, CorePool, FAMILIES, type Family, sharedFloat32Array } from "../core/index.ts";
import { describeMachine, medianSeconds } from "./machine.ts";

const KS = [256, 4096];
// Parameters per case: generating k Gaussian entries per parameter is far costlier than a sketch's one word.
const SIZES: Record<Family, Record<number, number>> = {
  sketch: { 256: 1 << 24, 4096: 1 << 24 },
  rademacher: { 256: 1 << 20, 4096: 1 << 17 },
  gaussian: { 256: 1 << 16, 4096: 1 << 12 },
};
const REPEATS = 3;

// Plain (not shared) buffers: V8 copies SharedArrayBuffer views with relaxed atomics, a slower baseline.
async function memcpyParamsPerSec(d: number): Promise<number> {
  const source = new Float32Array(d).fill(1);
  const target = new Float32Array(d);
  return d / (await medianSeconds(REPEATS + 2, () => target.set(source)));
}

interface Result {
  family: Family;
  op: "project" | "reconstruct";
  d: number;
  k: number;
  threads: number;
  paramsPerSec: number;
  ratioToMemcpy: number;
  basisElementsPerSecPerThread: number;
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const threadCounts = [...new Set([1, cores])];
  const pools = new Map(threadCounts.map((t) => [t, new CorePool(t)]));
  const memcpyByD = new Map<number, number>();
  const results: Result[] = [];
  const seed = 0x5eed5eed5eed5eedn;
  for (const family of FAMILIES) {
    for (const k of KS) {
      const d = SIZES[family][k] as number;
      if (!memcpyByD.has(d)) memcpyByD.set(d, await memcpyParamsPerSec(d));
      const memcpy = memcpyByD.get(d) as number;
      // One tensor, one block: the worst case for splitting work, and the layout of a large weight matrix.
      const plan = buildPlan([{ name: "w", shape: [d] }], { totalK: k });
      const delta = sharedFloat32Array(d).map((_, j) => Math.sin(j) / 64);
      const weights = sharedFloat32Array(d).fill(0.5);
      for (const threads of threadCounts) {
        const pool = pools.get(threads) as CorePool;
        let coefficients: Float32Array<ArrayBufferLike> = new Float32Array(k);
        const projectSeconds = await medianSeconds(REPEATS, async () => {
          coefficients = await pool.project(delta, seed, plan, family);
        });
        const reconstructSeconds = await medianSeconds(REPEATS, () =>
          pool.reconstruct(weights, coefficients, seed, plan, family, 1e-3),
        );
        for (const [op, seconds] of [
          ["project", projectSeconds],
          ["reconstruct", reconstructSeconds],
        ] as const) {
          const paramsPerSec = d / seconds;
          results.push({
            family,
            op,
            d,
            k,
            threads,
            paramsPerSec,
            ratioToMemcpy: paramsPerSec / memcpy,
            basisElementsPerSecPerThread: (paramsPerSec * (family === "sketch" ? 1 : k)) / threads,
          });
          process.stderr.write(
            `  ${family} ${op} k=${k} threads=${threads}: ${paramsPerSec.toExponential(3)} params/s\n`,
          );
        }
      }
    }
  }
  await Promise.all([...pools.values()].map((p) => p.close()));
  const largest = Math.max(...memcpyByD.keys());
  const report = {
    machine: describeMachine(),
    memcpyParamsPerSec: memcpyByD.get(largest),
    memcpyParamsPerSecByD: Object.fromEntries(memcpyByD),
    results,
  };
  writeFileSync(new URL("results/core.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`);
  console.table(
    results.map((r) => ({
      family: r.family,
      op: r.op,
      d: r.d,
      k: r.k,
      threads: r.threads,
      "params/s": r.paramsPerSec.toExponential(3),
      "× memcpy": r.ratioToMemcpy.toFixed(4),
      "basis elems/s/thread": r.basisElementsPerSecPerThread.toExponential(3),
    })),
  );
  const sketch = results.filter(
    (r) => r.family === "sketch" && r.op === "reconstruct" && r.threads === cores,
  );
  const gaussian = results.filter((r) => r.family === "gaussian" && r.threads === 1);
  console.log(
    `goal: sketch reconstruct, all ${cores} cores ≥ 0.25 × memcpy — reached ${sketch.map((r) => r.ratioToMemcpy.toFixed(3)).join(", ")}`,
  );
  console.log(
    `goal: gaussian ≥ 1e8 basis elements/s/core — reached ${gaussian.map((r) => r.basisElementsPerSecPerThread.toExponential(2)).join(", ")}`,
  );
}

await main();

// Engine benchmark: forward pass vs. training step (forward + backward + clipping + SGD update, the client's
// step) of a model (GPT-2 style unless BENCH_MODEL says otherwise), measured in the same run on the same
// weights, and peak memory against 6 × parameter bytes + activations. Writes bench/results/engine.json (engine-<model>.json for another model).
//   npm run bench:engine              (env BENCH_ITERATIONS, BENCH_THREADS, BENCH_DEVICE=cpu|cuda|webgpu,
//                                      BENCH_HOST_STEP=1 to also time the host path's step,
//                                      BENCH_MODEL=reference|gpt2-small|llama,
//                                      FERRET_TUNE_HEAP=0 without the glibc heap tunables, client/engine/heap.ts)
// Threads default to the client's (client/engine/threads.ts). Peak RSS is measured twice: with the training
// session alone (its warm-up steps, the first thing the process does), then with the loss session added for the
// timed runs. `npm run profile:engine` breaks the time down.
import "../client/engine/tune-heap.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, totalmem } from "node:os";
import type { Device } from "../client/engine/devices.ts";
import { ResidentSgdSession } from "../client/engine/resident.ts";
import { LossSession, TrainingSession } from "../client/engine/session.ts";
import { availableCores } from "../client/engine/threads.ts";
import { parameterCount, parseModelConfig } from "../client/models/index.ts";
import { initWeights } from "../client/models/init.ts";
import { CLIP_NORM } from "../client/participant/trainer.ts";
import { activationBytes, BATCH, benchModel, referenceBatch, SEQ } from "./engine-reference.ts";
import { describeGpus } from "./machine.ts";

const WARMUP = 3;
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 15);
const THREADS = process.env.BENCH_THREADS ? Number(process.env.BENCH_THREADS) : undefined;
const DEVICE = (process.env.BENCH_DEVICE ?? "cpu") as Device;
const LEARNING_RATE = 1e-3;
const { name: MODEL, config: CONFIG } = benchModel("BENCH_MODEL");

const loadAtStart = loadavg()[0];
const config = parseModelConfig(CONFIG);
const weights = initWeights(config, 0);
const paramCount = parameterCount(config);
const tokens = BATCH * SEQ;
const batch = referenceBatch(config.vocabSize);
const options = { batchSize: BATCH, seqLen: SEQ, device: DEVICE, ...(THREADS ? { threads: THREADS } : {}) };

/** Wall seconds and process CPU seconds (all threads) of one call. CPU time does not count waiting for a core,
 * so on a machine shared with other work it tracks the work done more steadily than wall time. */
async function measure(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const [wallStart, cpuStart] = [process.hrtime.bigint(), process.cpuUsage()];
  await fn();
  const cpu = process.cpuUsage(cpuStart);
  return { wall: Number(process.hrtime.bigint() - wallStart) / 1e9, cpu: (cpu.user + cpu.system) / 1e6 };
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
/** The process's peak resident set so far (Linux VmHWM, as getrusage's maxRSS). */
const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

process.stderr.write(
  `${MODEL} (${config.modelType}), ${paramCount} parameters, batch ${BATCH} × ${SEQ}, ${DEVICE}\n`,
);
// "Forward" is the forward pass up to the loss (LossSession): the training step minus its backward half and
// update. ForwardSession would add copying the [B, T, vocab] logits (200 MB here) out to JavaScript, which
// makes the forward slower and the ratio look better than the backward pass earns.
// The training step is the client's (LocalTrainer): forward, backward, global-norm clipping and the SGD update
// in one graph whose weights stay with the session between steps (client/engine/resident.ts; on webgpu in GPU
// memory). BENCH_HOST_STEP=1 also times the earlier host path: gradients out to JavaScript, update there.
const training = await ResidentSgdSession.create(config, options, CLIP_NORM);
training.begin(weights);
const runTrainStep = () => training.step(batch, LEARNING_RATE);
const host = process.env.BENCH_HOST_STEP === "1" ? await TrainingSession.create(config, options) : undefined;
// A trainer reuses its gradient arrays from step to step (as OnnxGradientSource does).
let gradArrays: Map<string, Float32Array | Float64Array> | undefined;
const runHostStep = async () => {
  if (!host) return;
  const { grads } = await host.step(weights, batch, gradArrays);
  gradArrays = grads;
  for (const [name, g] of grads) {
    const w = weights.get(name)?.data as Float32Array;
    for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) - LEARNING_RATE * (g[i] as number);
  }
};

// onnxruntime sizes its memory arena and allocation plan over the first runs, which are several times slower
// than the steady state, and glibc raises its mmap threshold only once the first large output copies are freed
// (until then they page-fault): untimed runs of each first. The training session's come first, alone in the process,
// for its peak memory. Then forward and training runs alternate, so on a shared machine both see the same
// background load and their ratio stays meaningful.
for (let i = 0; i < WARMUP; i++) {
  await runTrainStep();
  process.stderr.write(`training warm-up ${i + 1}/${WARMUP}\n`);
}
const peakRssTrainingAlone = peakRss();
const forward = await LossSession.create(config, options);
const runForward = () => forward.loss(weights, batch);
for (let i = 0; i < WARMUP; i++) {
  await runForward();
  await runHostStep();
}
const forwardRuns: { wall: number; cpu: number }[] = [];
const trainRuns: { wall: number; cpu: number }[] = [];
const hostTimes: number[] = [];
for (let i = 0; i < ITERATIONS; i++) {
  const [f, t] = [await measure(runForward), await measure(runTrainStep)];
  forwardRuns.push(f);
  trainRuns.push(t);
  if (host) hostTimes.push((await measure(runHostStep)).wall);
  process.stderr.write(
    `${i + 1}/${ITERATIONS}: forward ${f.wall.toFixed(3)} s (cpu ${f.cpu.toFixed(3)} s), ` +
      `train step ${t.wall.toFixed(3)} s (cpu ${t.cpu.toFixed(3)} s)` +
      (host ? `, host step ${(hostTimes[i] as number).toFixed(3)} s\n` : "\n"),
  );
}
await host?.release();
await forward.release();
await training.release();
const forwardTimes = forwardRuns.map((r) => r.wall);
const trainTimes = trainRuns.map((r) => r.wall);
const [forwardSeconds, trainSeconds] = [median(forwardTimes), median(trainTimes)];
const [forwardCpu, trainCpu] = [median(forwardRuns.map((r) => r.cpu)), median(trainRuns.map((r) => r.cpu))];

const ortVersion = (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string })
  .version;
const paramBytes = paramCount * 4;
const activations = activationBytes(config, BATCH, SEQ);
const memoryGoalBytes = 6 * paramBytes + activations.bytes;
const peakRssBothSessions = peakRss();
const result = {
  machine:
    `${cpus()[0]?.model ?? "unknown CPU"} (${cpus().length} logical cores, ${Math.round(totalmem() / 2 ** 30)} GiB), ` +
    `Node ${process.version}, onnxruntime-node ${ortVersion}, device ${DEVICE}, threads ${THREADS ?? availableCores() ?? "onnxruntime's default"}` +
    (DEVICE === "cpu"
      ? ""
      : `, GPU ${describeGpus().join(" + ") || "model not found (only NVIDIA's are looked for)"}`) +
    (process.env.GLIBC_TUNABLES ? `, GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}` : ""),
  config: {
    ...CONFIG,
    model: MODEL,
    batchSize: BATCH,
    seqLen: SEQ,
    warmup: WARMUP,
    iterations: ITERATIONS,
    forward: "LossSession (forward to the loss)",
    trainStep: `ResidentSgdSession: forward, backward, clipping to norm ${CLIP_NORM} and the SGD update in one graph`,
    statistic: "median of alternating runs",
    parameters: paramCount,
  },
  forwardTokensPerSec: tokens / forwardSeconds,
  trainTokensPerSec: tokens / trainSeconds,
  trainToForwardTimeRatio: trainSeconds / forwardSeconds,
  paramBytes,
  /** 1-minute load average at start and end: other processes competing for the cores make runs noisy. */
  loadAverage: [loadAtStart, loadavg()[0]],
  trainToForwardCpuTimeRatio: trainCpu / forwardCpu,
  forwardSeconds: forwardTimes,
  trainSeconds: trainTimes,
  /** Whole process, both sessions held (the loss session added after the training session's warm-up). */
  peakRssBytes: peakRssBothSessions,
  /** Whole process while it held only the training session (its warm-up steps). */
  peakRssTrainingSessionBytes: peakRssTrainingAlone,
  activationBytes: activations.bytes,
  activationFormula: activations.formula,
  /** The goal: peak RSS ≤ 6 × paramBytes + activationBytes. */
  memoryGoalBytes,
  peakRssToGoal: peakRssBothSessions / memoryGoalBytes,
  peakRssTrainingSessionToGoal: peakRssTrainingAlone / memoryGoalBytes,
  ...(host
    ? {
        /** BENCH_HOST_STEP=1: the host path's step (peak RSS above then includes its session). */
        hostTrainTokensPerSec: tokens / median(hostTimes),
        hostTrainToForwardTimeRatio: median(hostTimes) / forwardSeconds,
        hostTrainSeconds: hostTimes,
      }
    : {}),
};
mkdirSync(new URL("results/", import.meta.url), { recursive: true });
const file = MODEL === "reference" ? "engine.json" : `engine-${MODEL}.json`;
writeFileSync(new URL(`results/${file}`, import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));

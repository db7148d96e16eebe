// Where a training step's time goes, by onnxruntime's own profiler: kernel time per op type and per node for the
// loss graph (forward) and the client's training step (one graph: forward, backward, clipping, update), and the
// time each run spends outside onnxruntime's executor (feeding inputs, copying outputs into JavaScript). Kernel
// time does not count other processes' work between runs, so on a shared machine the kernel-time ratio is
// steadier than bench/engine.ts's wall-time ratio.
//   npm run profile:engine            (env PROFILE_RUNS, default 4; PROFILE_TOP, default 12;
//                                      PROFILE_DEVICE=cpu|cuda|webgpu, default cpu;
//                                      PROFILE_MODEL=reference|gpt2-small|llama, default reference)
// On a GPU device a kernel's time is the time to issue it, and kernelMsByProvider shows which nodes onnxruntime
// left on the CPU (with the copies between devices they cost).
import "../client/engine/tune-heap.ts";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Device } from "../client/engine/devices.ts";
import { ResidentSgdSession } from "../client/engine/resident.ts";
import { type Batch, LossSession, type Params } from "../client/engine/session.ts";
import { availableCores } from "../client/engine/threads.ts";
import { parseModelConfig } from "../client/models/index.ts";
import { initWeights } from "../client/models/init.ts";
import { CLIP_NORM } from "../client/participant/trainer.ts";
import { BATCH, benchModel, referenceBatch, SEQ } from "./engine-reference.ts";

const RUNS = Number(process.env.PROFILE_RUNS ?? 4);
const TOP = Number(process.env.PROFILE_TOP ?? 12);
const DEVICE = (process.env.PROFILE_DEVICE ?? "cpu") as Device;
const MODEL = benchModel("PROFILE_MODEL");

/** One event of onnxruntime's Chrome-trace profile (times in microseconds). */
interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args: { op_name?: string; provider?: string; input_type_shape?: unknown; output_type_shape?: unknown };
}

interface Profiled {
  run(): Promise<unknown>;
  endProfiling(): void;
  release(): Promise<void>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const ms = (us: number): number => Math.round(us / 100) / 10;

/** Runs `session` once to warm up and RUNS times measured; summarizes the measured runs from its profile. */
async function profile(label: string, dir: string, session: Profiled) {
  await session.run();
  const walls: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await session.run();
    walls.push((performance.now() - start) * 1000);
    process.stderr.write(`${label} ${i + 1}/${RUNS}: ${(walls[i] as number) / 1000} ms\n`);
  }
  session.endProfiling();
  await session.release();
  const file = readdirSync(dir).find((f) => f.startsWith(`${label}_`) && f.endsWith(".json"));
  if (!file) throw new Error(`onnxruntime wrote no profile for ${label} in ${dir}`);
  const events = JSON.parse(readFileSync(join(dir, file), "utf8")) as ProfileEvent[];
  const runs = events.filter((e) => e.name === "model_run").slice(-RUNS);
  const firstMeasured = (runs[0] as ProfileEvent).ts;
  const kernels = events.filter(
    (e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= firstMeasured,
  );
  const byOp = new Map<string, number>();
  const byProvider = new Map<string, number>();
  const byNode = new Map<string, { us: number; shapes: string }>();
  for (const k of kernels) {
    const op = k.args.op_name ?? "?";
    byOp.set(op, (byOp.get(op) ?? 0) + k.dur / RUNS);
    const provider = k.args.provider ?? "?";
    byProvider.set(provider, (byProvider.get(provider) ?? 0) + k.dur / RUNS);
    const node = byNode.get(k.name) ?? {
      us: 0,
      shapes: `${op} (${k.args.provider ?? "?"}) ${JSON.stringify(k.args.input_type_shape)} -> ${JSON.stringify(k.args.output_type_shape)}`,
    };
    node.us += k.dur / RUNS;
    byNode.set(k.name, node);
  }
  const kernelUs = kernels.reduce((s, k) => s + k.dur, 0) / RUNS;
  return {
    wallMs: ms(median(walls)),
    executorMs: ms(median(runs.map((r) => r.dur))),
    /** Per run: wall time minus onnxruntime's executor time, i.e. the JavaScript binding's share. */
    outsideExecutorMs: ms(median(walls.map((w, i) => w - (runs[i] as ProfileEvent).dur))),
    kernelMs: ms(kernelUs),
    kernelMsByProvider: Object.fromEntries([...byProvider].map(([p, us]) => [p, ms(us)])),
    byOpMs: Object.fromEntries([...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => [op, ms(us)])),
    topNodes: [...byNode]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, TOP)
      .map(([, n]) => `${ms(n.us)} ms ${n.shapes}`),
  };
}

const loadAtStart = loadavg()[0];
const config = parseModelConfig(MODEL.config);
const weights: Params = initWeights(config, 0);
const batch: Batch = referenceBatch(config.vocabSize);
const dir = mkdtempSync(join(tmpdir(), "ferret-profile-"));
const options = (label: string) => ({
  batchSize: BATCH,
  seqLen: SEQ,
  device: DEVICE,
  profilePrefix: join(dir, label),
});
try {
  const loss = await LossSession.create(config, options("loss"));
  const forward = await profile("loss", dir, Object.assign(loss, { run: () => loss.loss(weights, batch) }));
  // The client's step: forward, backward, clipping and the SGD update in one graph (client/engine/resident.ts).
  const training = await ResidentSgdSession.create(config, options("train"), CLIP_NORM);
  training.begin(weights);
  const train = await profile(
    "train",
    dir,
    Object.assign(training, { run: () => training.step(batch, 1e-3) }),
  );
  const result = {
    config: {
      ...MODEL.config,
      model: MODEL.name,
      batchSize: BATCH,
      seqLen: SEQ,
      runs: RUNS,
      device: DEVICE,
      threads: availableCores() ?? "onnxruntime's default",
      trainStep: "one graph",
    },
    kernelTimeRatio: train.kernelMs / forward.kernelMs,
    wallTimeRatio: train.wallMs / forward.wallMs,
    loadAverage: [loadAtStart, loadavg()[0]],
    forward,
    train,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// What a benchmark ran on, recorded beside its figures so numbers from different machines are not compared.
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";

export interface Machine {
  cpu: string;
  cores: number;
  memoryBytes: number;
  node: string;
  platform: string;
  arch: string;
  /** 1, 5 and 15-minute load averages when the run ended: other work on a shared machine skews timings. */
  loadAverage: number[];
}

export function describeMachine(): Machine {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    loadAverage: loadavg(),
  };
}

const NVIDIA_GPUS = "/proc/driver/nvidia/gpus";

/** The models of the NVIDIA GPUs the driver lists ("NVIDIA H200", …); other vendors' GPUs are not looked for. */
export function describeGpus(): string[] {
  let buses: string[];
  try {
    buses = readdirSync(NVIDIA_GPUS);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return []; // no NVIDIA driver loaded
    throw error;
  }
  return buses.map((bus) => {
    const info = readFileSync(join(NVIDIA_GPUS, bus, "information"), "utf8");
    return /^Model:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? `NVIDIA GPU at ${bus}`;
  });
}

async function secondsOf(work: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function medianOf(repeats: number, work: () => unknown): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) times.push(await secondsOf(work));
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

/** Median wall-clock seconds of `repeats` runs of `work` (after one warm-up run). */
export async function medianSeconds(repeats: number, work: () => unknown): Promise<number> {
  await work();
  return medianOf(repeats, work);
}

export interface Timing {
  seconds: number;
  /** How `seconds` was taken, recorded beside it. */
  statistic: string;
}

/**
 * Like medianSeconds, except that a first run of `singleAbove` seconds or more is the figure itself: warm-up
 * costs nothing measurable beside it, and repeating a minute-long run would cost minutes.
 */
export async function timeOnceIfLong(
  repeats: number,
  singleAbove: number,
  work: () => unknown,
): Promise<Timing> {
  const first = await secondsOf(work);
  if (first >= singleAbove) return { seconds: first, statistic: "single run" };
  return { seconds: await medianOf(repeats, work), statistic: `median of ${repeats} after a warm-up run` };
}

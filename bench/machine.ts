// What a benchmark ran on, recorded beside its figures so numbers from different machines are not compared.
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";

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

/** Median wall-clock seconds of `repeats` runs of `work` (after one warm-up run). */
export async function medianSeconds(repeats: number, work: () => unknown): Promise<number> {
  await work();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = process.hrtime.bigint();
    await work();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

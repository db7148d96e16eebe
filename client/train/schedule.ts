/** Learning-rate schedules: functions from a 0-based optimizer step to a learning rate. */
import { TrainingError } from "./params.ts";

export type LrSchedule = (step: number) => number;

export type ScheduleSpec =
  | { kind: "constant"; lr: number }
  | { kind: "cosine" | "linear"; peakLr: number; warmupSteps: number; totalSteps: number; minLr?: number };

/**
 * constant: lr at every step.
 * cosine / linear: linear warmup from peakLr/warmupSteps up to peakLr over `warmupSteps` steps, then a
 * decay to minLr (default 0) by step `totalSteps`, held at minLr after that.
 */
export function makeSchedule(spec: ScheduleSpec): LrSchedule {
  if (spec.kind === "constant") {
    checkRate("lr", spec.lr);
    return () => spec.lr;
  }
  const { peakLr, warmupSteps, totalSteps, minLr = 0 } = spec;
  checkRate("peakLr", peakLr);
  checkRate("minLr", minLr);
  if (minLr > peakLr) throw new TrainingError("BAD_SCHEDULE", `minLr ${minLr} exceeds peakLr ${peakLr}`);
  if (
    !Number.isInteger(warmupSteps) ||
    !Number.isInteger(totalSteps) ||
    warmupSteps < 0 ||
    totalSteps < warmupSteps
  ) {
    throw new TrainingError(
      "BAD_SCHEDULE",
      `expected integers 0 ≤ warmupSteps ≤ totalSteps, got warmupSteps ${warmupSteps}, totalSteps ${totalSteps}`,
    );
  }
  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  return (step) => {
    if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
    const progress = Math.min(1, (step - warmupSteps) / decaySteps);
    const fraction = spec.kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
    return minLr + (peakLr - minLr) * fraction;
  };
}

function checkRate(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new TrainingError("BAD_SCHEDULE", `${name} must be finite and ≥ 0, got ${value}`);
  }
}

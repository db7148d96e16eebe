import { describe, expect, it } from "vitest";
import { InputError } from "../../client/cli/output.ts";
import {
  DEFAULT_LOCAL_LR,
  latestCheckpoint,
  localStepsOf,
  type RunOptions,
  strategyConfig,
} from "../../client/cli/run.ts";
import { DEFAULT_BASIS, resolveRunConfig, runConfigSchema } from "../../functions/rounds/run-config.ts";

// `ferret run create` flags → the run config the backend's own schema accepts, for each strategy.
const base: RunOptions = {
  strategy: "ferret",
  basis: "gaussian",
  k: 64,
  clientsPerRound: 2,
  quorum: 2,
  minUploads: 1,
  deadline: 60,
  globalLr: 1,
  localSteps: 5,
  localLr: 0.01,
  batchSize: 2,
  weighting: "examples",
};

function resolved(options: RunOptions) {
  return resolveRunConfig(
    runConfigSchema.parse({
      ...strategyConfig(options),
      tensors: [
        { name: "w", shape: [64, 32] },
        { name: "b", shape: [32] },
      ],
      learningRate: 1,
      clientsPerRound: 2,
      quorum: 2,
      minUploads: 1,
      deadlineSeconds: 60,
      localSteps: { steps: 5, learningRate: 0.01, batchSize: 2 },
    }),
  );
}

const { k: _k, ...withoutK } = base;

describe("run create --strategy", () => {
  it("ferret sends K; the plan carries it", () => {
    expect(strategyConfig(base)).toEqual({ strategy: "ferret", basis: "gaussian", totalK: 64 });
    expect(resolved(base).plan.totalK).toBe(64);
  });

  it("without --basis leaves the family to the server, which picks the benchmarked default", () => {
    const { basis: _named, ...unnamed } = base;
    expect(strategyConfig(unnamed)).toEqual({ strategy: "ferret", totalK: 64 });
    expect(resolved(unnamed).basis).toBe(DEFAULT_BASIS);
    const { k: _unused, ...unnamedWithoutK } = unnamed;
    expect(resolved({ ...unnamedWithoutK, strategy: "fedkseed" }).basis).toBe("gaussian");
  });

  it("fedavg sends no K (the plan only shards the model)", () => {
    expect(strategyConfig({ ...withoutK, strategy: "fedavg" })).toEqual({
      strategy: "fedavg",
      basis: "gaussian",
    });
    expect(resolved({ ...withoutK, strategy: "fedavg" }).strategy).toBe("fedavg");
  });

  it("fedkseed sends --seed-pool and --perturbation, filling the one left out with the server's default", () => {
    const options: RunOptions = { ...withoutK, strategy: "fedkseed", seedPool: 256 };
    expect(strategyConfig(options)).toEqual({
      strategy: "fedkseed",
      basis: "gaussian",
      zerothOrder: { seedPool: 256, perturbation: 1e-3 },
    });
    expect(resolved(options).zerothOrder).toEqual({ seedPool: 256, perturbation: 1e-3 });
    expect(resolved({ ...withoutK, strategy: "fedkseed" }).zerothOrder).toEqual({
      seedPool: 1024,
      perturbation: 1e-3,
    });
  });

  it("takes each strategy's own local learning rate unless --local-lr is given", () => {
    const { localLr: _given, ...unset } = withoutK;
    expect(localStepsOf({ ...unset, strategy: "fedkseed" }).learningRate).toBe(DEFAULT_LOCAL_LR.fedkseed);
    expect(localStepsOf({ ...unset, strategy: "ferret" }).learningRate).toBe(DEFAULT_LOCAL_LR.ferret);
    expect(DEFAULT_LOCAL_LR.fedkseed).toBeLessThan(DEFAULT_LOCAL_LR.ferret);
    expect(localStepsOf({ ...withoutK, strategy: "fedkseed" })).toEqual({
      steps: 5,
      learningRate: 0.01,
      batchSize: 2,
    });
  });

  it("refuses --k for the strategies that upload no projected coefficients", () => {
    for (const strategy of ["fedavg", "fedkseed"] as const) {
      expect(() => strategyConfig({ ...base, strategy })).toThrow(/--k applies to --strategy ferret only/);
    }
    expect(strategyConfig({ ...withoutK, basis: "sketch" })).toEqual({
      strategy: "ferret",
      basis: "sketch",
      totalK: 4096,
    });
  });

  it("refuses pool settings for a strategy that has no pool", () => {
    expect(() => strategyConfig({ ...base, perturbation: 0.01 })).toThrow(InputError);
    expect(() => strategyConfig({ ...withoutK, strategy: "fedavg", seedPool: 8 })).toThrow(
      /apply to --strategy fedkseed only, not fedavg/,
    );
  });
});

describe("run status and export: the latest checkpoint", () => {
  const status = (round?: { round: number; state: string; baseCheckpoint: number }, ready = true) =>
    ({ initialCheckpointReady: ready, ...(round ? { round } : {}) }) as unknown as Parameters<
      typeof latestCheckpoint
    >[0];

  it("is the result of a DONE round, else the checkpoint the current round started from", () => {
    expect(latestCheckpoint(status(undefined, false))).toBeUndefined();
    expect(latestCheckpoint(status())).toBe(0);
    expect(latestCheckpoint(status({ round: 4, state: "DONE", baseCheckpoint: 3 }))).toBe(5);
    // Round 3 failed, so round 4 started from checkpoint 3 and there is no checkpoint 4 yet.
    expect(latestCheckpoint(status({ round: 4, state: "OPEN", baseCheckpoint: 3 }))).toBe(3);
    expect(latestCheckpoint(status({ round: 4, state: "FAILED", baseCheckpoint: 3 }))).toBe(3);
  });
});

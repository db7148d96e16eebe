// The run config is checked whole before anything is stored; each error names the field and what was expected.
import { describe, expect, it } from "vitest";
import { BadRequest } from "../../functions/errors.ts";
import { parse } from "../../functions/http.ts";
import {
  DEFAULT_BASIS,
  MAX_CLIENTS_PER_ROUND,
  MAX_FEDAVG_PARAMS,
  MAX_SEED_PAIRS,
  MAX_TOTAL_K,
  resolveRunConfig,
  runConfigSchema,
} from "../../functions/rounds/run-config.ts";

const valid = {
  tensors: [
    { name: "wte", shape: [64, 8] },
    { name: "ln_f", shape: [8] },
  ],
  totalK: 32,
  learningRate: 0.1,
  clientsPerRound: 4,
  quorum: 3,
  minUploads: 2,
  deadlineSeconds: 600,
};

const resolve = (input: unknown) => resolveRunConfig(parse(runConfigSchema, input, "run_config"));
const problem = (input: unknown) => {
  try {
    resolve(input);
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequest);
    return (error as BadRequest).message;
  }
  throw new Error("accepted an invalid config");
};

describe("run config", () => {
  it("builds the block plan with core and fills defaults", () => {
    const config = resolve(valid);
    expect(config.plan.totalK).toBe(32);
    expect(config.plan.totalParams).toBe(64 * 8 + 8);
    expect(config).toMatchObject({ strategy: "ferret", basis: DEFAULT_BASIS, weighting: "examples" });
    expect(config.zerothOrder).toBeUndefined();
  });

  it("keeps the family an operator names, and gives fedkseed gaussian when none is named", () => {
    expect(resolve({ ...valid, basis: "rademacher" }).basis).toBe("rademacher");
    const fedkseed = { ...valid, strategy: "fedkseed", zerothOrder: { seedPool: 16, perturbation: 1e-3 } };
    expect(resolve({ ...fedkseed, basis: "gaussian" }).basis).toBe("gaussian");
    expect(resolve(fedkseed).basis).toBe("gaussian");
  });

  it("accepts a plan it is given, validated by core", () => {
    const { plan } = resolve(valid);
    const { tensors: _t, totalK: _k, ...rest } = valid;
    expect(resolve({ ...rest, plan }).plan).toEqual(plan);
    expect(problem({ ...rest, plan: { ...plan, totalK: 7 } })).toMatch(/invalid block plan/);
  });

  it.each([
    [{ quorum: 5 }, "quorum"],
    [{ minUploads: 4 }, "minUploads"],
    [{ learningRate: -1 }, "learningRate"],
    [{ basis: "fourier" }, "basis"],
    [{ totalK: MAX_TOTAL_K + 1 }, "totalK"],
    [{ deadlineSeconds: 0 }, "deadlineSeconds"],
    [{ surprise: true }, "surprise"],
    [{ plan: {} }, "plan"],
  ])("refuses %j, naming %s", (change, field) => {
    expect(problem({ ...valid, ...change })).toContain(field);
  });

  it("refuses ferret tensors without totalK", () => {
    const { totalK: _k, ...rest } = valid;
    expect(problem(rest)).toMatch(/totalK is required/);
  });
});

describe("run config strategies", () => {
  const { totalK: _k, ...tensorsOnly } = valid;

  it("fedavg accepts tensors alone and gives each block one coefficient", () => {
    const config = resolve({ ...tensorsOnly, strategy: "fedavg" });
    expect(config.strategy).toBe("fedavg");
    expect(config.plan.blocks.length).toBeGreaterThan(0);
    expect(config.plan.blocks.every((b) => b.k === 1)).toBe(true);
    expect(config.plan.totalK).toBe(config.plan.blocks.length);
    expect(config.zerothOrder).toBeUndefined();
  });

  it("fedkseed fills the zeroth-order defaults and keeps gaussian", () => {
    const tensors = [{ name: "wte", shape: [256, 8] }];
    const config = resolve({ ...tensorsOnly, tensors, strategy: "fedkseed" });
    expect(config).toMatchObject({
      strategy: "fedkseed",
      basis: "gaussian",
      zerothOrder: { seedPool: 1024, perturbation: 1e-3 },
    });
    expect(config.plan.totalParams).toBe(256 * 8);
  });

  it("fedkseed keeps the zeroth-order settings it is given", () => {
    const zerothOrder = { seedPool: 16, perturbation: 0.01 };
    expect(resolve({ ...valid, strategy: "fedkseed", zerothOrder }).zerothOrder).toEqual(zerothOrder);
  });

  it.each([
    [{ strategy: "fedsgd" }, "strategy"],
    [{ strategy: "ferret", zerothOrder: { seedPool: 8, perturbation: 1e-3 } }, "zerothOrder applies only"],
    [{ strategy: "fedavg", zerothOrder: { seedPool: 8, perturbation: 1e-3 } }, "zerothOrder applies only"],
    [{ strategy: "fedkseed", basis: "sketch" }, "gaussian"],
    [{ strategy: "fedkseed", zerothOrder: { seedPool: 0, perturbation: 1e-3 } }, "zerothOrder.seedPool"],
    [{ strategy: "fedkseed", zerothOrder: { seedPool: 8, perturbation: 0 } }, "zerothOrder.perturbation"],
    [{ strategy: "fedkseed", zerothOrder: { seedPool: 8, perturbation: 1e-3, k: 1 } }, "k"],
    [{ strategy: "fedkseed", zerothOrder: { seedPool: 1000, perturbation: 1e-3 } }, "520 parameters"],
    [
      { strategy: "fedkseed", localSteps: { steps: MAX_SEED_PAIRS + 1, learningRate: 1e-3, batchSize: 1 } },
      "localSteps.steps",
    ],
  ])("refuses %j, naming %s", (change, words) => {
    expect(problem({ ...valid, ...change })).toContain(words);
  });

  // Beyond these sizes a run would be accepted and then fail in every client or in every commit.
  const huge = (count: number, size: number) =>
    Array.from({ length: count }, (_, i) => ({ name: `layer${i}`, shape: [size] }));
  it("refuses a fedkseed model larger than the seed pool's single block can hold", () => {
    const tensors = huge(3, 2 ** 31 - 16);
    expect(problem({ ...valid, tensors, totalK: undefined, strategy: "fedkseed" })).toContain(
      "zerothOrder.seedPool",
    );
  });

  it("refuses a fedavg model larger than one commit can stream", () => {
    const tensors = huge(2, MAX_FEDAVG_PARAMS / 2 + 1);
    expect(problem({ ...valid, tensors, totalK: undefined, strategy: "fedavg" })).toContain(
      `limited to ${MAX_FEDAVG_PARAMS}`,
    );
    const fits = huge(2, MAX_FEDAVG_PARAMS / 2);
    expect(resolve({ ...valid, tensors: fits, totalK: undefined, strategy: "fedavg" }).plan.totalParams).toBe(
      MAX_FEDAVG_PARAMS,
    );
  });

  it("refuses more clients a round than its record can list in one DynamoDB item", () => {
    const many = { ...valid, quorum: 2, minUploads: 2 };
    expect(problem({ ...many, clientsPerRound: MAX_CLIENTS_PER_ROUND + 1 })).toContain("clientsPerRound");
    expect(resolve({ ...many, clientsPerRound: MAX_CLIENTS_PER_ROUND }).clientsPerRound).toBe(
      MAX_CLIENTS_PER_ROUND,
    );
  });
});

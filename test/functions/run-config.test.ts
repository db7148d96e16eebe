// The run config is checked whole before anything is stored; each error names the field and what was expected.
import { describe, expect, it } from "vitest";
import { BadRequest } from "../../functions/errors.ts";
import { parse } from "../../functions/http.ts";
import { MAX_TOTAL_K, resolveRunConfig, runConfigSchema } from "../../functions/rounds/run-config.ts";

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
    expect(config).toMatchObject({ basis: "gaussian", weighting: "examples" });
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
});

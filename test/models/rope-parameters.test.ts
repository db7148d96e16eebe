// The rotary base and scaling as both transformers v4 (top-level rope_theta / rope_scaling) and v5 (one
// rope_parameters object) write them: the same model must parse the same either way, and scaling we do not build
// must be refused in either form, never dropped.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ModelConfigError } from "../../client/models/config.ts";
import { type LlamaConfig, parseModelConfig } from "../../client/models/index.ts";

// Qwen2.5-0.5B's shape as transformers v5 saves it.
const QWEN2_V5 = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  hidden_size: 896,
  intermediate_size: 4864,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  num_hidden_layers: 24,
  vocab_size: 151936,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  use_sliding_window: false,
  rope_parameters: { rope_type: "default", rope_theta: 1000000.0 },
};

// Llama-3.2-1B's shape, without any rope fields.
const LLAMA = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 8192,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  num_hidden_layers: 16,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  head_dim: 64,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};
const LLAMA3_SCALING = {
  rope_type: "llama3",
  rope_theta: 500000.0,
  factor: 32.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  original_max_position_embeddings: 8192,
};

const parse = (json: object) => parseModelConfig(json) as LlamaConfig;
const errorOf = (json: object): ModelConfigError => {
  try {
    parseModelConfig(json);
  } catch (error) {
    expect(error).toBeInstanceOf(ModelConfigError);
    return error as ModelConfigError;
  }
  throw new Error(`expected ${JSON.stringify(json)} to be refused`);
};

const theta = fc.double({ min: 1, max: 1e9, noNaN: true });
const family = fc.constantFrom<object>(LLAMA, { ...QWEN2_V5, rope_parameters: undefined });

describe("rope_parameters (transformers v5)", () => {
  it("gives Qwen2's rope_theta of 1e6, not the 10000 default", () => {
    expect(parse(QWEN2_V5).ropeTheta).toBe(1e6);
  });

  it("parses to the same config as the v4 form, for any rope_theta", () => {
    fc.assert(
      fc.property(family, theta, fc.boolean(), (json, value, withType) => {
        const v4 = parse({ ...json, rope_theta: value, rope_scaling: null });
        const rope = withType ? { rope_type: "default", rope_theta: value } : { rope_theta: value };
        expect(v4.ropeTheta).toBe(value);
        expect(parse({ ...json, rope_parameters: rope })).toEqual(v4);
        // Both forms at once are fine while they agree.
        expect(parse({ ...json, rope_theta: value, rope_parameters: rope })).toEqual(v4);
      }),
    );
  });

  it("falls back to the top-level rope_theta, then 10000, when rope_parameters has none", () => {
    expect(parse({ ...LLAMA, rope_parameters: { rope_type: "default" } }).ropeTheta).toBe(10000);
    expect(parse({ ...LLAMA, rope_theta: 5e5, rope_parameters: { rope_type: "default" } }).ropeTheta).toBe(
      5e5,
    );
  });

  it("refuses Llama 3's scaling in rope_parameters, as it refuses it in rope_scaling", () => {
    expect(errorOf({ ...LLAMA, rope_parameters: LLAMA3_SCALING }).message).toBe(
      'config.rope_parameters.rope_type "llama3" is not supported; expected "default" or absent',
    );
    expect(errorOf({ ...LLAMA, rope_theta: 5e5, rope_scaling: LLAMA3_SCALING }).message).toBe(
      "config.rope_scaling is not supported; expected null or absent",
    );
  });

  it("refuses any rope_type other than default", () => {
    const ropeType = fc.oneof(
      fc.constantFrom("linear", "dynamic", "yarn", "longrope", "llama3", "Default", ""),
      fc.string().filter((s) => s !== "default"),
      fc.integer(),
    );
    fc.assert(
      fc.property(family, ropeType, theta, (json, type, value) => {
        const error = errorOf({
          ...json,
          rope_parameters: { rope_type: type, rope_theta: value, factor: 2 },
        });
        expect(error.field).toBe("rope_parameters");
        expect(error.message).toContain(`rope_type ${JSON.stringify(type)} is not supported`);
      }),
    );
  });

  it("refuses a top-level rope_theta that disagrees with rope_parameters, naming both values", () => {
    fc.assert(
      fc.property(family, theta, theta, (json, a, b) => {
        fc.pre(a !== b);
        const error = errorOf({
          ...json,
          rope_theta: a,
          rope_parameters: { rope_type: "default", rope_theta: b },
        });
        expect(error.message).toBe(
          `config.rope_theta (${a}) and config.rope_parameters.rope_theta (${b}) disagree; expected one value, or only one of them`,
        );
      }),
    );
  });

  it("refuses a rope_parameters that is not an object, or a rope_theta that is not a positive number", () => {
    for (const bad of [[], "default", 10000, true]) {
      expect(errorOf({ ...LLAMA, rope_parameters: bad }).message).toMatch(
        /^config\.rope_parameters must be an object like \{"rope_type": "default", "rope_theta": 10000\}, got /,
      );
    }
    for (const bad of [0, -1, "1e6", Number.POSITIVE_INFINITY]) {
      expect(errorOf({ ...LLAMA, rope_parameters: { rope_type: "default", rope_theta: bad } }).message).toBe(
        `config.rope_parameters.rope_theta must be a positive number, got ${JSON.stringify(bad)}`,
      );
    }
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineInputError } from "../../client/engine/build.ts";
import type { Device } from "../../client/engine/devices.ts";
import {
  DeviceUnavailableError,
  deviceUnavailableHelp,
  ForwardSession,
  TrainingSession,
} from "../../client/engine/session.ts";
import { ModelConfigError, UnknownArchitectureError } from "../../client/models/config.ts";
import { modelTensors, parseModelConfig } from "../../client/models/index.ts";
import { initWeights } from "../../client/models/init.ts";
import { buildPlan } from "../../core/plan.ts";
import { TINY_GPT2, TINY_LLAMA } from "./fixtures.ts";

describe("config.json parsing", () => {
  it("names the model family and HF tensor names", () => {
    const gpt2 = parseModelConfig(TINY_GPT2);
    expect(gpt2.modelType).toBe("gpt2");
    expect(modelTensors(gpt2).slice(0, 4)).toEqual([
      { name: "wte.weight", shape: [13, 8] },
      { name: "wpe.weight", shape: [8, 8] },
      { name: "h.0.ln_1.weight", shape: [8] },
      { name: "h.0.ln_1.bias", shape: [8] },
    ]);
    expect(modelTensors(gpt2)).toContainEqual({ name: "h.1.attn.c_attn.weight", shape: [8, 24] });
    const llama = modelTensors(parseModelConfig(TINY_LLAMA));
    expect(llama).toContainEqual({ name: "model.layers.1.self_attn.k_proj.weight", shape: [4, 8] });
    expect(llama.at(-1)).toEqual({ name: "lm_head.weight", shape: [13, 8] });
    const qwen = modelTensors(
      parseModelConfig({ ...TINY_LLAMA, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }),
    );
    expect(qwen.map((t) => t.name)).toContain("model.layers.0.self_attn.v_proj.bias");
    expect(qwen.map((t) => t.name)).not.toContain("model.layers.0.self_attn.o_proj.bias");
  });

  it("lists tensors that core's buildPlan accepts, covering every initial weight in order", () => {
    for (const json of [TINY_GPT2, TINY_LLAMA]) {
      const config = parseModelConfig(json);
      const plan = buildPlan(modelTensors(config), { totalK: 256 });
      const weights = initWeights(config, 1);
      expect(plan.tensors.map((t) => t.name)).toEqual([...weights.keys()]);
      expect(plan.totalParams).toBe([...weights.values()].reduce((n, w) => n + w.data.length, 0));
    }
  });

  it("rejects an unknown architecture or model_type, saying what is supported", () => {
    expect(() => parseModelConfig({ ...TINY_GPT2, model_type: "bert" })).toThrow(UnknownArchitectureError);
    expect(() => parseModelConfig({ ...TINY_GPT2, model_type: "bert" })).toThrow(
      /expected model_type one of gpt2/,
    );
    expect(() => parseModelConfig({ ...TINY_LLAMA, architectures: ["MistralForCausalLM"] })).toThrow(
      /unknown architecture "MistralForCausalLM"; expected one of GPT2LMHeadModel/,
    );
    expect(() => parseModelConfig({ ...TINY_LLAMA, architectures: ["GPT2LMHeadModel"] })).toThrow(
      /does not match/,
    );
    expect(() => parseModelConfig([])).toThrow(/must be a JSON object/);
  });

  it("rejects unsupported options instead of silently ignoring them", () => {
    expect(() => parseModelConfig({ ...TINY_LLAMA, rope_scaling: { type: "linear", factor: 2 } })).toThrow(
      /rope_scaling/,
    );
    expect(() => parseModelConfig({ ...TINY_LLAMA, hidden_act: "gelu" })).toThrow(
      /hidden_act.*supported: silu/,
    );
    expect(() => parseModelConfig({ ...TINY_LLAMA, num_key_value_heads: 3 })).toThrow(/divisible/);
  });

  const required: Record<string, [object, string[]]> = {
    gpt2: [TINY_GPT2, ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]],
    llama: [
      TINY_LLAMA,
      [
        "vocab_size",
        "max_position_embeddings",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
      ],
    ],
  };
  for (const [family, [json, fields]] of Object.entries(required)) {
    it(`${family}: any missing or non-positive required field is named in the error`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...fields), fc.constantFrom(undefined, 0, -3, 1.5, "8"), (field, bad) => {
          const broken: Record<string, unknown> = { ...json, [field]: bad };
          if (bad === undefined) delete broken[field];
          const err = (() => {
            try {
              parseModelConfig(broken);
            } catch (e) {
              return e;
            }
          })();
          expect(err).toBeInstanceOf(ModelConfigError);
          expect((err as ModelConfigError).field).toBe(field);
          expect((err as Error).message).toContain("positive integer");
        }),
      );
    });
  }
});

describe("session input checks", () => {
  const config = parseModelConfig(TINY_GPT2);
  const shape = { batchSize: 1, seqLen: 4 };
  const ids = BigInt64Array.from([1n, 2n, 3n, 4n]);

  it("parameters whose shapes do not match the config", async () => {
    const session = await ForwardSession.create(config, shape);
    const weights = initWeights(parseModelConfig({ ...TINY_GPT2, n_embd: 4 }), 1);
    await expect(session.logits(weights, ids)).rejects.toThrow(
      /parameter wte.weight has shape \[13,4\] with 52 values; the config expects \[13,8\]/,
    );
    const missing = initWeights(config, 1);
    missing.delete("ln_f.bias");
    await expect(session.logits(missing, ids)).rejects.toThrow(
      /missing parameter ln_f.bias \(expected shape \[8\]\)/,
    );
    const extra = initWeights(config, 1).set("lm_head.weight", {
      shape: [13, 8],
      data: new Float32Array(104),
    });
    await expect(session.logits(extra, ids)).rejects.toThrow(
      /unexpected parameters for this config: lm_head.weight/,
    );
  });

  it("token ids outside the vocabulary, wrong batch size, empty loss mask", async () => {
    const session = await TrainingSession.create(config, shape);
    const weights = initWeights(config, 1);
    const mask = new Float32Array(4).fill(1);
    const step = (inputIds: BigInt64Array, lossMask = mask) =>
      session.step(weights, { inputIds, targets: ids, lossMask });
    await expect(step(BigInt64Array.from([1n, 13n, 0n, 0n]))).rejects.toThrow(
      /input_ids\[1\] = 13 is outside/,
    );
    await expect(step(ids.subarray(0, 3))).rejects.toThrow(/3 tokens; expected batch 1 × 4/);
    await expect(step(ids, new Float32Array(4))).rejects.toThrow(EngineInputError);
  });

  it("a sequence longer than the model's positions", async () => {
    await expect(TrainingSession.create(config, { batchSize: 1, seqLen: 9 })).rejects.toThrow(
      /seqLen 9 exceeds the model's maximum of 8 positions/,
    );
  });

  it("device cuda without ORT's CUDA provider names the install flag", async (ctx) => {
    try {
      await ForwardSession.create(config, { ...shape, device: "cuda" });
      ctx.skip(); // this install has a working CUDA provider: nothing to check here
    } catch (err) {
      expect(err).toBeInstanceOf(DeviceUnavailableError);
      expect((err as Error).message).toContain("--onnxruntime-node-install=cuda12");
    }
  });

  // onnxruntime-node 1.30 has a CUDA provider on Linux x64 only, and WebGPU everywhere but Linux arm64; no install
  // flag adds either elsewhere. (Windows x64 lists dml, a provider Ferret does not offer.)
  it("a device that this platform's onnxruntime-node has no provider for names the devices there are", () => {
    const windows = ["cpu", "dml", "webgpu"].map((name) => ({ name, bundled: true }));
    const linuxArm = [{ name: "cpu", bundled: true }];
    expect(deviceUnavailableHelp("cuda", windows)).toMatch(
      /^onnxruntime-node has no cuda execution provider on .*; use device cpu or webgpu\.$/,
    );
    expect(deviceUnavailableHelp("webgpu", linuxArm)).toMatch(
      /no webgpu execution provider .*; use device cpu\.$/,
    );
    expect(deviceUnavailableHelp("webgpu", windows)).toBeUndefined();
    expect(deviceUnavailableHelp("cpu", linuxArm)).toBeUndefined();
  });

  it("device webgpu without a GPU adapter says what Dawn needs", async (ctx) => {
    try {
      await ForwardSession.create(config, { ...shape, device: "webgpu" });
      ctx.skip(); // this machine has a WebGPU adapter: nothing to check here
    } catch (err) {
      expect(err).toBeInstanceOf(DeviceUnavailableError);
      expect((err as Error).message).toContain("apt install libvulkan1 libglx0");
    }
  });

  it("an unknown device names the ones there are", async () => {
    await expect(
      ForwardSession.create(config, { ...shape, device: "tpu" as unknown as Device }),
    ).rejects.toThrow(/device must be one of cpu, cuda, webgpu, got tpu/);
  });
});

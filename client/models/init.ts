// Seeded initial weights. The generator is xoshiro128** seeded through splitmix32, with Box–Muller normals:
// reproducible for a given seed on any machine running V8 (whose Math.log/cos/sin are fdlibm ports). Weights
// created here never enter the federated reconstruction path, which has its own exact-rounded generator.
import { initRule, type ModelConfig, modelTensors } from "./index.ts";

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Uniform doubles in (0, 1) from xoshiro128**. */
function uniforms(seed: number, stream: number): () => number {
  const mix = splitmix32((seed ^ Math.imul(stream + 1, 0x27d4eb2f)) >>> 0);
  let [a, b, c, d] = [mix(), mix(), mix(), mix()];
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return (result + 0.5) / 4294967296;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** Fresh weights for every tensor of the model; tensor i draws from its own stream, so it does not depend on
 * the shapes of the others. Same config and seed → same bytes. */
export function initWeights(config: ModelConfig, seed: number): Map<string, WeightTensor> {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const weights = new Map<string, WeightTensor>();
  modelTensors(config).forEach((spec, stream) => {
    const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    const rule = initRule(config, spec.name);
    if (rule.kind === "ones") data.fill(1);
    if (rule.kind === "normal") {
      const next = uniforms(seed, stream);
      for (let i = 0; i < data.length; i += 2) {
        const radius = rule.std * Math.sqrt(-2 * Math.log(next()));
        const angle = 2 * Math.PI * next();
        data[i] = radius * Math.cos(angle);
        if (i + 1 < data.length) data[i + 1] = radius * Math.sin(angle);
      }
    }
    weights.set(spec.name, { shape: spec.shape, data });
  });
  return weights;
}

// Plain-JavaScript float64 forward passes of both families, written loop by loop from the published model
// definitions (GPT-2: Radford et al. 2019 with HF's Conv1D [in, out] layout; LLaMA: Touvron et al. 2023 with HF's
// rotate_half RoPE and repeat_kv head grouping). They share no code with the graph engine, so agreement checks the
// engine's wiring: projection layouts, q/k/v split order, head layout, masking, RoPE, GQA, biases, tied heads.
import type { Gpt2Config, LlamaConfig } from "../../client/models/index.ts";

type Weights = ReadonlyMap<string, { data: ArrayLike<number> }>;
type Vec = Float64Array;

const get = (w: Weights, name: string): ArrayLike<number> => {
  const t = w.get(name);
  if (!t) throw new Error(`reference: no weight ${name}`);
  return t.data;
};

/** y = W x (+ b); `inOut` selects W stored [in, out] (Conv1D) instead of [out, in] (nn.Linear). */
function linear(x: Vec, w: ArrayLike<number>, nOut: number, inOut: boolean, b?: ArrayLike<number>): Vec {
  const nIn = x.length;
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let s = b ? (b[o] as number) : 0;
    for (let i = 0; i < nIn; i++) s += (x[i] as number) * (w[inOut ? i * nOut + o : o * nIn + i] as number);
    y[o] = s;
  }
  return y;
}

function addInto(x: Vec, y: Vec): void {
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) + (y[i] as number);
}

function mean(x: Vec): number {
  return x.reduce((a, b) => a + b, 0) / x.length;
}

function layerNorm(x: Vec, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): Vec {
  const mu = mean(x);
  const variance = mean(x.map((v) => (v - mu) ** 2));
  return x.map((v, i) => ((v - mu) / Math.sqrt(variance + eps)) * (w[i] as number) + (b[i] as number));
}

function rmsNorm(x: Vec, w: ArrayLike<number>, eps: number): Vec {
  const rms = Math.sqrt(mean(x.map((v) => v * v)) + eps);
  return x.map((v, i) => (v / rms) * (w[i] as number));
}

/** Causal attention for one head: q, k, v are per-position vectors of that head. */
function attendHead(q: Vec[], k: Vec[], v: Vec[]): Vec[] {
  const d = q[0]?.length ?? 0;
  return q.map((qt, t) => {
    const scores = k
      .slice(0, t + 1)
      .map((ku) => qt.reduce((s, x, i) => s + x * (ku[i] as number), 0) / Math.sqrt(d));
    const max = Math.max(...scores);
    const e = scores.map((s) => Math.exp(s - max));
    const z = e.reduce((a, b) => a + b, 0);
    const out = new Float64Array(d);
    e.forEach((p, u) => {
      for (let i = 0; i < d; i++) out[i] = (out[i] as number) + (p / z) * ((v[u] as Vec)[i] as number);
    });
    return out;
  });
}

const head = (x: Vec, h: number, d: number): Vec => x.slice(h * d, (h + 1) * d);
const row = (table: ArrayLike<number>, r: number, d: number): Vec =>
  Float64Array.from({ length: d }, (_, i) => table[r * d + i] as number);

export function gpt2Reference(c: Gpt2Config, w: Weights, ids: number[]): Vec[] {
  const d = c.hiddenSize;
  const hd = d / c.numHeads;
  const x = ids.map((id, t) =>
    row(get(w, "wte.weight"), id, d).map((v, i) => v + (get(w, "wpe.weight")[t * d + i] as number)),
  );
  const conv = (v: Vec, name: string, nOut: number) =>
    linear(v, get(w, `${name}.weight`), nOut, true, get(w, `${name}.bias`));
  const ln = (v: Vec, name: string) =>
    layerNorm(v, get(w, `${name}.weight`), get(w, `${name}.bias`), c.layerNormEps);
  for (let l = 0; l < c.numLayers; l++) {
    const qkv = x.map((v) => conv(ln(v, `h.${l}.ln_1`), `h.${l}.attn.c_attn`, 3 * d));
    const merged = x.map(() => new Float64Array(d));
    for (let h = 0; h < c.numHeads; h++) {
      const out = attendHead(
        qkv.map((r) => head(r, h, hd)),
        qkv.map((r) => head(r.subarray(d), h, hd)),
        qkv.map((r) => head(r.subarray(2 * d), h, hd)),
      );
      out.forEach((o, t) => {
        (merged[t] as Vec).set(o, h * hd);
      });
    }
    x.forEach((v, t) => {
      addInto(v, conv(merged[t] as Vec, `h.${l}.attn.c_proj`, d));
    });
    for (const v of x) {
      const hidden = conv(ln(v, `h.${l}.ln_2`), `h.${l}.mlp.c_fc`, c.innerSize).map(
        (u) => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3))),
      );
      addInto(v, conv(hidden, `h.${l}.mlp.c_proj`, d));
    }
  }
  return x.map((v) => linear(ln(v, "ln_f"), get(w, "wte.weight"), c.vocabSize, false));
}

function rope(x: Vec, pos: number, theta: number): Vec {
  const d = x.length;
  const half = d / 2;
  return x.map((v, i) => {
    const angle = pos / theta ** ((2 * (i % half)) / d);
    const partner = i < half ? -(x[i + half] as number) : (x[i - half] as number);
    return v * Math.cos(angle) + partner * Math.sin(angle);
  });
}

export function llamaReference(c: LlamaConfig, w: Weights, ids: number[]): Vec[] {
  const d = c.hiddenSize;
  const hd = c.headDim;
  const group = c.numHeads / c.numKvHeads;
  const proj = (v: Vec, name: string, nOut: number, bias: boolean) =>
    linear(v, get(w, `${name}.weight`), nOut, false, bias ? get(w, `${name}.bias`) : undefined);
  const x = ids.map((id) => row(get(w, "model.embed_tokens.weight"), id, d));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    const h = x.map((v) => rmsNorm(v, get(w, `${p}.input_layernorm.weight`), c.rmsNormEps));
    const q = h.map((v) => proj(v, `${p}.self_attn.q_proj`, c.numHeads * hd, c.qkvBias));
    const k = h.map((v) => proj(v, `${p}.self_attn.k_proj`, c.numKvHeads * hd, c.qkvBias));
    const val = h.map((v) => proj(v, `${p}.self_attn.v_proj`, c.numKvHeads * hd, c.qkvBias));
    const merged = x.map(() => new Float64Array(c.numHeads * hd));
    for (let j = 0; j < c.numHeads; j++) {
      const kv = Math.floor(j / group);
      const out = attendHead(
        q.map((r, t) => rope(head(r, j, hd), t, c.ropeTheta)),
        k.map((r, t) => rope(head(r, kv, hd), t, c.ropeTheta)),
        val.map((r) => head(r, kv, hd)),
      );
      out.forEach((o, t) => {
        (merged[t] as Vec).set(o, j * hd);
      });
    }
    x.forEach((v, t) => {
      addInto(v, proj(merged[t] as Vec, `${p}.self_attn.o_proj`, d, c.outputBias));
    });
    for (const v of x) {
      const n = rmsNorm(v, get(w, `${p}.post_attention_layernorm.weight`), c.rmsNormEps);
      const gate = proj(n, `${p}.mlp.gate_proj`, c.intermediateSize, c.mlpBias);
      const up = proj(n, `${p}.mlp.up_proj`, c.intermediateSize, c.mlpBias);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * (up[i] as number));
      addInto(v, proj(act, `${p}.mlp.down_proj`, d, c.mlpBias));
    }
  }
  const headWeight = get(w, c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return x.map((v) =>
    linear(rmsNorm(v, get(w, "model.norm.weight"), c.rmsNormEps), headWeight, c.vocabSize, false),
  );
}

// Central finite differences through onnxruntime in float64: the analytic gradient of a graph must match
// (L(x + h·e_i) − L(x − h·e_i)) / 2h. With h = 1e-5 the truncation error is O(h²·L''') ≈ 1e-10 and the rounding
// error ≈ ε·|L|/h ≈ 1e-11, so a mismatch above 1e-6 (relative) is a wrong rule, not noise.
import ort from "onnxruntime-node";
import { expect } from "vitest";
import { gradients } from "../../client/engine/autodiff.ts";
import { Graph, type Tensor } from "../../client/engine/graph.ts";
import { toOnnxModel } from "../../client/engine/onnx.ts";
import { mul, reduceSum, reshape } from "../../client/engine/ops.ts";
import { createSession } from "../../client/engine/session.ts";

export const STEP = 1e-5;
export const RTOL = 1e-6;
export const ATOL = 1e-8;

/** Deterministic pseudo-random numbers in [lo, hi) (mulberry32), for test inputs. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  let s = seed >>> 0;
  return Float64Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return lo + (((t ^ (t >>> 14)) >>> 0) / 4294967296) * (hi - lo);
  });
}

export function expectGradientsClose(analytic: number, numeric: number, what: string): void {
  const err = Math.abs(analytic - numeric);
  if (err > ATOL + RTOL * Math.max(Math.abs(analytic), Math.abs(numeric))) {
    expect.fail(`${what}: analytic ${analytic} vs finite difference ${numeric} (error ${err})`);
  }
}

/** (L(x + h·e_j) − L(x − h·e_j)) / 2h, restoring x[j] afterwards. */
export async function centralDifference(
  x: Float64Array,
  j: number,
  loss: () => Promise<number>,
): Promise<number> {
  const saved = x[j] as number;
  x[j] = saved + STEP;
  const up = await loss();
  x[j] = saved - STEP;
  const down = await loss();
  x[j] = saved;
  return (up - down) / (2 * STEP);
}

export interface OpCase {
  shapes: number[][];
  /** Inputs drawn from [0.5, 1.5) instead of [-1, 1) (for log, sqrt, divisors). */
  positive?: boolean;
  build: (...inputs: Tensor[]) => Tensor;
}

/** Checks every coordinate of every input of `build` against finite differences of Σ build(x)·R, R random. */
export async function checkOpGradients(c: OpCase, seed = 1): Promise<void> {
  const g = new Graph("float64");
  const xs = c.shapes.map((shape, i) => g.input(`x${i}`, shape, "float64", true));
  const out = c.build(...xs);
  const weights = g.constant(randomArray(out.size, seed + 100), [...out.shape]);
  const loss = reduceSum(reshape(mul(out, weights), [out.size]), [0], false);
  const grads = gradients(loss, xs);
  const outputs = [{ name: "loss", tensor: loss }, ...grads.map((t, i) => ({ name: `g${i}`, tensor: t }))];
  // The engine's own session options: float64 graphs skip onnxruntime's float-only fusions (QuickGelu, …).
  const session = await createSession(toOnnxModel(g, outputs), {
    batchSize: 1,
    seqLen: 1,
    floatType: "float64",
  });
  const values = xs.map((x, i) => randomArray(x.size, seed + i, c.positive ? 0.5 : -1, c.positive ? 1.5 : 1));
  const run = async () => {
    const feeds = Object.fromEntries(
      xs.map((x, i) => [x.name, new ort.Tensor("float64", values[i] as Float64Array, x.shape)]),
    );
    return session.run(feeds);
  };
  const base = await run();
  for (const [i, x] of values.entries()) {
    const analytic = base[`g${i}`]?.data as Float64Array;
    expect(analytic.length).toBe(x.length);
    for (let j = 0; j < x.length; j++) {
      const numeric = await centralDifference(x, j, async () => Number((await run()).loss?.data[0]));
      expectGradientsClose(analytic[j] as number, numeric, `input ${i}[${j}]`);
    }
  }
  await session.release();
}

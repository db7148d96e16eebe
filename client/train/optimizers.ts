/**
 * Optimizers that update f32 parameters in place. State (momentum, moments) is allocated lazily per tensor
 * and lives as long as the optimizer: make a new one per federated round, since each round starts from the
 * server's new weights.
 */
import { checkGradients, type ParamRecord, TrainingError } from "./params.ts";

export interface Optimizer {
  /** One update of every parameter from its gradient, at learning rate `lr`. */
  step(params: ParamRecord, grads: ParamRecord, lr: number): void;
}

/** A learning rate an optimizer can step with, or an error saying what it was. */
export function checkLearningRate(lr: number): void {
  if (!Number.isFinite(lr) || lr < 0)
    throw new TrainingError("BAD_LR", `learning rate must be finite and ≥ 0, got ${lr}`);
}

function checkStep(params: ParamRecord, grads: ParamRecord, lr: number): void {
  checkLearningRate(lr);
  checkGradients(params, grads); // before any write, so a bad call changes nothing
}

function stateFor(state: Map<string, Float32Array>, name: string, length: number): Float32Array {
  let s = state.get(name);
  if (s === undefined) {
    s = new Float32Array(length);
    state.set(name, s);
  }
  return s;
}

export interface SgdOptions {
  /** Heavy-ball momentum μ: v ← μ·v + g, w ← w − lr·v. 0 (the default) is plain SGD, the paper's choice. */
  momentum?: number;
  /** L2 penalty added to the gradient: g ← g + λ·w. */
  weightDecay?: number;
}

export class Sgd implements Optimizer {
  private readonly velocity = new Map<string, Float32Array>();
  private readonly momentum: number;
  private readonly weightDecay: number;

  constructor(options: SgdOptions = {}) {
    this.momentum = options.momentum ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    if (!(this.momentum >= 0 && this.momentum < 1)) {
      throw new TrainingError("BAD_OPTION", `momentum must be in [0, 1), got ${this.momentum}`);
    }
  }

  step(params: ParamRecord, grads: ParamRecord, lr: number): void {
    checkStep(params, grads, lr);
    for (const [name, w] of Object.entries(params)) {
      const g = grads[name] as Float32Array;
      const v = this.momentum > 0 ? stateFor(this.velocity, name, w.length) : undefined;
      for (let i = 0; i < w.length; i++) {
        let d = (g[i] as number) + this.weightDecay * (w[i] as number);
        if (v !== undefined) {
          d += this.momentum * (v[i] as number);
          v[i] = d;
        }
        w[i] = (w[i] as number) - lr * d;
      }
    }
  }
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay λ (Loshchilov & Hutter 2019): w ← w − lr·λ·w, separate from the Adam step. */
  weightDecay?: number;
}

/**
 * Adam with decoupled weight decay and bias correction:
 *   m ← β1·m + (1−β1)·g,  v ← β2·v + (1−β2)·g²,  m̂ = m/(1−β1^t),  v̂ = v/(1−β2^t),
 *   w ← w − lr·(m̂/(√v̂ + ε) + λ·w).
 */
export class AdamW implements Optimizer {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;

  constructor(options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    for (const [key, beta] of [
      ["beta1", this.beta1],
      ["beta2", this.beta2],
    ] as const) {
      if (!(beta >= 0 && beta < 1))
        throw new TrainingError("BAD_OPTION", `${key} must be in [0, 1), got ${beta}`);
    }
    if (!(this.eps > 0)) throw new TrainingError("BAD_OPTION", `eps must be > 0, got ${this.eps}`);
  }

  /** Steps taken so far (the t of the bias correction). */
  get steps(): number {
    return this.t;
  }

  step(params: ParamRecord, grads: ParamRecord, lr: number): void {
    checkStep(params, grads, lr);
    this.t++;
    const correction1 = 1 - this.beta1 ** this.t;
    const correction2 = 1 - this.beta2 ** this.t;
    for (const [name, w] of Object.entries(params)) {
      const g = grads[name] as Float32Array;
      const m = stateFor(this.m, name, w.length);
      const v = stateFor(this.v, name, w.length);
      for (let i = 0; i < w.length; i++) {
        const gi = g[i] as number;
        const mi = this.beta1 * (m[i] as number) + (1 - this.beta1) * gi;
        const vi = this.beta2 * (v[i] as number) + (1 - this.beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const wi = w[i] as number;
        w[i] =
          wi - lr * (mi / correction1 / (Math.sqrt(vi / correction2) + this.eps) + this.weightDecay * wi);
      }
    }
  }
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AdamW, Sgd } from "../../client/train/optimizers.ts";
import { TrainingError } from "../../client/train/params.ts";

const one = (x: number) => ({ w: Float32Array.of(x) });

describe("SGD", () => {
  it("steps w ← w − lr·g", () => {
    const params = { w: Float32Array.of(1, -2), b: Float32Array.of(0.5) };
    new Sgd().step(params, { w: Float32Array.of(0.5, -1), b: Float32Array.of(2) }, 0.1);
    expect(params.w).toEqual(Float32Array.of(0.95, -1.9));
    expect(params.b).toEqual(Float32Array.of(Math.fround(0.5 - 0.2)));
  });

  it("accumulates heavy-ball momentum: v ← μv + g", () => {
    const params = one(0);
    const sgd = new Sgd({ momentum: 0.9 });
    sgd.step(params, one(1), 0.1); // v = 1, w = −0.1
    sgd.step(params, one(1), 0.1); // v = 1.9, w = −0.29
    expect(params.w[0]).toBeCloseTo(-0.29, 6);
  });

  it("adds weight decay to the gradient", () => {
    const params = one(2);
    new Sgd({ weightDecay: 0.5 }).step(params, one(0), 0.1); // g = 0 + 0.5·2 = 1
    expect(params.w[0]).toBeCloseTo(1.9, 6);
  });
});

describe("AdamW", () => {
  it("matches the update worked by hand, with bias correction and decoupled decay", () => {
    const params = one(1);
    const adam = new AdamW({ weightDecay: 0.01 });
    adam.step(params, one(0.5), 0.1);
    // m̂ = 0.5, v̂ = 0.25: w = 1 − 0.1·(0.5/(0.5 + 1e-8) + 0.01·1)
    expect(params.w[0]).toBeCloseTo(0.899000002, 7);
    adam.step(params, one(-0.25), 0.1);
    expect(params.w[0]).toBeCloseTo(0.8714672987, 6);
    expect(adam.steps).toBe(2);
  });

  it("takes a first step of about lr in the gradient's direction, whatever its scale", () => {
    fc.assert(
      fc.property(fc.double({ min: 1e-3, max: 1e3, noNaN: true }), fc.boolean(), (magnitude, negative) => {
        const g = negative ? -magnitude : magnitude;
        const params = one(0);
        new AdamW({ weightDecay: 0 }).step(params, one(g), 0.01);
        expect(params.w[0]).toBeCloseTo(negative ? 0.01 : -0.01, 6);
      }),
    );
  });

  it("minimizes a quadratic", () => {
    const target = Float32Array.of(3, -1, 0.5);
    const params = { w: new Float32Array(3) };
    const adam = new AdamW({ weightDecay: 0 });
    for (let i = 0; i < 500; i++) {
      adam.step(params, { w: params.w.map((x, j) => x - (target[j] as number)) }, 0.05);
    }
    for (let j = 0; j < 3; j++) expect(params.w[j]).toBeCloseTo(target[j] as number, 2);
  });
});

describe("bad calls", () => {
  it("change nothing and say what was wrong", () => {
    const params = { a: Float32Array.of(1), b: Float32Array.of(2) };
    for (const optimizer of [new Sgd(), new AdamW()]) {
      expect(() => optimizer.step(params, { a: Float32Array.of(1) }, 0.1)).toThrow(
        /no gradient for parameter "b"/,
      );
      expect(() => optimizer.step(params, { a: Float32Array.of(1), b: Float32Array.of(1, 2) }, 0.1)).toThrow(
        /gradient of "b" has 2 values, expected 1/,
      );
      expect(() =>
        optimizer.step(params, { a: Float32Array.of(1), b: Float32Array.of(1), c: Float32Array.of(1) }, 0.1),
      ).toThrow(/unknown parameter "c"/);
      expect(() =>
        optimizer.step(params, { a: Float32Array.of(1), b: Float32Array.of(1) }, Number.NaN),
      ).toThrow(TrainingError);
    }
    expect(params).toEqual({ a: Float32Array.of(1), b: Float32Array.of(2) });
    expect(() => new Sgd({ momentum: 1 })).toThrow(/momentum must be in \[0, 1\)/);
    expect(() => new AdamW({ beta2: 1.5 })).toThrow(/beta2 must be in \[0, 1\)/);
  });
});

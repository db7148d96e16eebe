// Random tensor lists for the safetensors property tests: names unique, shapes small (zero-sized included).
import fc from "fast-check";
import type { NamedTensor } from "../../core/formats/safetensors.ts";

const tensorArb = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }).chain((shape) =>
  fc.record({
    shape: fc.constant(shape),
    values: fc.array(fc.float(), {
      minLength: shape.reduce((a, b) => a * b, 1),
      maxLength: shape.reduce((a, b) => a * b, 1),
    }),
  }),
);

export const tensorsArb = fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), tensorArb), {
  selector: ([name]) => name,
  maxLength: 6,
});

export function toNamed(list: [string, { shape: number[]; values: number[] }][]): NamedTensor[] {
  return list
    .filter(([name]) => name !== "__metadata__")
    .map(([name, t]) => ({ name, shape: t.shape, data: Float32Array.from(t.values) }));
}

// The server sums a round's uploads page by page as DynamoDB returns them (RunningAggregate); the result must be
// aggregate()'s bytes exactly, and out-of-order or repeated clients must be refused rather than summed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aggregate, RunningAggregate } from "../../core/aggregate.ts";

const uploadsArb = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 })
  .chain((ids) =>
    fc.tuple(
      fc.constant(ids),
      fc.array(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), {
          minLength: 5,
          maxLength: 5,
        }),
        {
          minLength: ids.length,
          maxLength: ids.length,
        },
      ),
      fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: ids.length, maxLength: ids.length }),
    ),
  )
  .map(([ids, values, examples]) =>
    ids.map((clientId, i) => ({
      clientId,
      coefficients: Float32Array.from(values[i] as number[]),
      examples: examples[i] as number,
    })),
  );

type Upload = { clientId: string; coefficients: Float32Array; examples: number };

/** The spec (core/aggregate.ts, DESIGN.md): float64 sums in client-id order, divided once, rounded once. */
function specMean(uploads: Upload[], weighting: "examples" | "equal"): Float32Array {
  const ordered = [...uploads].sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
  const sums = new Float64Array(ordered[0]?.coefficients.length ?? 0);
  let total = 0;
  for (const { coefficients, examples } of ordered) {
    const weight = weighting === "examples" ? examples : 1;
    coefficients.forEach((c, k) => {
      sums[k] = (sums[k] as number) + weight * c;
    });
    total += weight;
  }
  return Float32Array.from(sums, (sum) => sum / total);
}

describe("RunningAggregate", () => {
  it("gives the spec's bytes when fed the uploads in client-id order, as aggregate() does in any order", () => {
    fc.assert(
      fc.property(
        uploadsArb,
        fc.constantFrom("examples" as const, "equal" as const),
        (uploads, weighting) => {
          const running = new RunningAggregate(weighting);
          const ordered = [...uploads].sort((a, b) => (a.clientId < b.clientId ? -1 : 1));
          for (const upload of ordered) running.add(upload);
          const expected = Buffer.from(specMean(uploads, weighting).buffer);
          expect(Buffer.from(running.mean().buffer).equals(expected)).toBe(true);
          expect(Buffer.from(aggregate([...uploads].reverse(), weighting).buffer).equals(expected)).toBe(
            true,
          );
          expect(running.uploads).toBe(uploads.length);
          expect(running.examples).toBe(uploads.reduce((sum, u) => sum + u.examples, 0));
        },
      ),
    );
  });

  it("refuses a client out of order or twice, and an empty round", () => {
    const upload = (clientId: string) => ({ clientId, coefficients: new Float32Array(2), examples: 1 });
    const running = new RunningAggregate("examples");
    running.add(upload("b"));
    expect(() => running.add(upload("a"))).toThrow(
      /client "a" comes after "b"; expected uploads in client-id order/,
    );
    expect(() => running.add(upload("b"))).toThrow(/client "b" appears twice/);
    expect(() => new RunningAggregate("equal").mean()).toThrow(/no uploads to aggregate/);
  });
});

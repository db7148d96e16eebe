// A staged fedavg update is checked as it streams: the exact length, every float32 finite, the SHA-256 the client
// named. Chunk boundaries fall anywhere, so the check must not depend on them.
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BadRequest } from "../../functions/errors.ts";
import { checkedUpdate, weightedUpdates } from "../../functions/rounds/fedavg.ts";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** `bytes` cut at the given positions, as an S3 body stream would deliver it. */
async function* chunked(bytes: Uint8Array, cuts: number[]) {
  let from = 0;
  for (const at of [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(from, at);
    from = at;
  }
  yield bytes.subarray(from);
}

async function drain(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

async function refusal(stream: AsyncIterable<Uint8Array>): Promise<BadRequest> {
  try {
    await drain(stream);
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequest);
    return error as BadRequest;
  }
  throw new Error("accepted");
}

const floats = fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 64 });
const cuts = fc.array(fc.nat(400), { maxLength: 12 });

describe("checkedUpdate", () => {
  it("passes every finite update through unchanged, however it is chunked", async () => {
    await fc.assert(
      fc.asyncProperty(floats, cuts, async (values, at) => {
        const bytes = new Uint8Array(Float32Array.from(values).buffer);
        const out = await drain(checkedUpdate(chunked(bytes, at), bytes.byteLength, sha256(bytes), "k"));
        expect(Buffer.from(out).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it("names the first non-finite value, however it is chunked", async () => {
    const bad = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);
    await fc.assert(
      fc.asyncProperty(floats, fc.nat(), bad, cuts, async (values, where, value, at) => {
        const index = where % values.length;
        const update = Float32Array.from(values);
        update[index] = value;
        const bytes = new Uint8Array(update.buffer);
        const error = await refusal(checkedUpdate(chunked(bytes, at), bytes.byteLength, sha256(bytes), "k"));
        expect(error.code).toBe("non_finite");
        expect(error.message).toContain(`update value ${index} is ${value}`);
      }),
    );
  });

  it("refuses a short or long object and a SHA-256 that does not match", async () => {
    const bytes = new Uint8Array(Float32Array.of(1, 2, 3).buffer);
    const short = await refusal(checkedUpdate(chunked(bytes, [5]), 16, sha256(bytes), "k"));
    expect(short).toMatchObject({
      code: "wrong_length",
      message: "k has 12 bytes; expected 4 float32 (16 bytes)",
    });
    const long = await refusal(checkedUpdate(chunked(bytes, [5]), 8, sha256(bytes), "k"));
    expect(long).toMatchObject({ code: "wrong_length" });
    const other = sha256(new Uint8Array(12));
    const mismatch = await refusal(checkedUpdate(chunked(bytes, []), 12, other, "k"));
    expect(mismatch).toMatchObject({ code: "sha256_mismatch" });
    expect(mismatch.message).toContain(sha256(bytes));
  });
});

describe("weightedUpdates", () => {
  const upload = (clientId: string, examples: number) => ({
    runId: "r",
    round: 0,
    clientId,
    coefficients: new Float32Array(0),
    updateSha256: clientId.repeat(64).slice(0, 64),
    examples,
    metrics: {},
    receivedAt: "",
  });

  it("orders clients by id and normalises core's weights to sum 1", () => {
    const uploads = [upload("c", 30), upload("a", 10), upload("b", 20)];
    expect(weightedUpdates(uploads, "examples").map((u) => [u.clientId, u.weight])).toEqual([
      ["a", 10 / 60],
      ["b", 20 / 60],
      ["c", 30 / 60],
    ]);
    expect(weightedUpdates(uploads, "equal").map((u) => u.weight)).toEqual([1 / 3, 1 / 3, 1 / 3]);
  });
});

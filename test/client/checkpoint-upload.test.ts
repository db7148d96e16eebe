// `ferret run create|upload` sends checkpoint 0 as a multipart upload. An 8B model is 32 GB: its part URLs come
// from the server a page at a time (all at once did not fit a Lambda reply, and would expire on a slow link),
// and its parts grow past 5 MiB so that there are at most 1,000 of them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiError, OutcomeUnknownError } from "../../client/api/errors.ts";
import { awaitImport, uploadParts } from "../../client/cli/checkpoint-upload.ts";
import { partBytesFor } from "../../core/multipart.ts";

const MIB = 1024 * 1024;

describe("checkpoint parts", () => {
  it("are 5 MiB, or whole MiB larger so that no file is more than 1,000 parts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 * 2 ** 40 }), (bytes) => {
        const size = partBytesFor(bytes);
        expect(size % MIB).toBe(0);
        expect(size).toBeGreaterThanOrEqual(5 * MIB);
        expect(Math.ceil(bytes / size)).toBeLessThanOrEqual(1000);
        if (bytes <= 5000 * MIB) expect(size).toBe(5 * MIB);
      }),
    );
    expect(partBytesFor(32_121_078_952)).toBe(31 * MIB);
  });

  it("go to URLs asked for page by page, each part once, a URL that expired asked for again", async () => {
    const parts = 12;
    const byteAt = (i: number) => (i * 31 + (i >> 20)) & 0xff;
    const file = {
      byteLength: (parts - 1) * 5 * MIB + 1234,
      async readInto(start: number, into: Uint8Array) {
        for (let i = 0; i < into.length; i++) into[i] = byteAt(start + i);
      },
    };
    const pages: [number, number][] = [];
    const sent = new Map<string, number>();
    let expireOnce = true;
    const api = {
      async startCheckpointUpload(_run: string, count: number) {
        expect(count).toBe(parts);
        return { uploadId: "up", partUrls: [1, 2, 3, 4, 5].map((n) => `url-${n}`) };
      },
      async checkpointPartUrls(_run: string, uploadId: string, first: number, count: number) {
        expect(uploadId).toBe("up");
        pages.push([first, count]);
        return Array.from({ length: count }, (_, i) => `url-${first + i}${count === 1 ? "-fresh" : ""}`);
      },
      http: {
        async upload(url: string, body: Uint8Array) {
          if (url === "url-7" && expireOnce) {
            expireOnce = false;
            throw new ApiError(403, "storage", "Request has expired");
          }
          const part = Number(url.split("-")[1]) - 1;
          body.forEach((b, i) => {
            if (b !== byteAt(part * 5 * MIB + i)) throw new Error(`part ${part + 1} byte ${i} is wrong`);
          });
          sent.set(url, (sent.get(url) ?? 0) + 1);
          return `etag-${part + 1}`;
        },
      },
    };
    let progress = 0;
    const { uploadId, etags } = await uploadParts(api, "run", file, (done) => {
      progress = done;
    });
    expect(uploadId).toBe("up");
    expect(pages).toEqual([
      [6, 5],
      [7, 1],
      [11, 2],
    ]);
    expect([...sent.entries()].sort()).toEqual(
      [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
        .map((n) => [`url-${n}`, 1])
        .concat([["url-7-fresh", 1]])
        .sort(),
    );
    expect(etags).toEqual(
      Array.from({ length: parts }, (_, i) => ({ partNumber: i + 1, etag: `etag-${i + 1}` })),
    );
    expect(progress).toBe(file.byteLength);
  });

  it("waits for an import the gateway gave up on, and says what to do if it never lands", async () => {
    const said: string[] = [];
    const out = { info: (m: string) => said.push(m) };
    let polls = 0;
    const landing = {
      status: async () => ({ initialCheckpointReady: ++polls >= 3, config: { plan: { totalParams: 42 } } }),
    };
    const api = landing as unknown as Parameters<typeof awaitImport>[0];
    expect(await awaitImport(api, out, "run-1", "up-1", { pollMs: 1 })).toEqual({
      checkpoint: 0,
      totalParams: 42,
    });
    expect(said).toHaveLength(2);
    // An earlier upload's failure is not this one's.
    const earlier = { uploadId: "up-0", status: 409, error: "invalid_checkpoint", message: "NaN" };
    const never = {
      status: async () => ({ initialCheckpointReady: false, importFailure: earlier }),
    } as unknown as typeof api;
    await expect(awaitImport(never, out, "run-1", "up-1", { waitMs: 20, pollMs: 5 })).rejects.toThrow(
      OutcomeUnknownError,
    );
    await expect(awaitImport(never, out, "run-1", "up-1", { waitMs: 0, pollMs: 5 })).rejects.toThrow(
      /run run-1 has no checkpoint 0 .* `ferret run upload` sends it again/,
    );
    const refused = {
      status: async () => ({
        initialCheckpointReady: false,
        importFailure: { ...earlier, uploadId: "up-1" },
      }),
    } as unknown as typeof api;
    await expect(awaitImport(refused, out, "run-1", "up-1", { pollMs: 1 })).rejects.toThrow(
      /409 invalid_checkpoint: NaN/,
    );
  });
});

// putNewFromChunks writes exports and fedavg's committed updates as multipart uploads, several parts at once. A
// part that fails must fail the write: completed without it, the object would have a gap that S3 accepts. A
// stand-in for S3 at the SDK boundary (send) records what the bucket asked for.
import type { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { CheckpointBucket } from "../../functions/storage/objects.ts";

const MIB = 1024 * 1024;

class StandInS3 {
  received = new Map<number, Uint8Array>();
  completed?: number[];
  aborted = false;
  constructor(private readonly failing?: { part: number; afterMs: number }) {}

  async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
    const input = command.input;
    switch (command.constructor.name) {
      case "HeadObjectCommand":
        throw Object.assign(new Error("not found"), { name: "NotFound" });
      case "CreateMultipartUploadCommand":
        return { UploadId: "upload-1" };
      case "UploadPartCommand": {
        const part = input.PartNumber as number;
        const failing = part === this.failing?.part;
        await new Promise((resolve) => setTimeout(resolve, failing ? this.failing?.afterMs : 20));
        if (failing) throw new Error("SlowDown: please reduce your request rate");
        this.received.set(part, (input.Body as Uint8Array).slice());
        return { ETag: `"etag-${part}"` };
      }
      case "CompleteMultipartUploadCommand": {
        const parts = (input.MultipartUpload as { Parts: { PartNumber: number }[] }).Parts;
        this.completed = parts.map((p) => p.PartNumber);
        return {};
      }
      case "AbortMultipartUploadCommand":
        this.aborted = true;
        return {};
      default:
        throw new Error(`unexpected ${command.constructor.name}`);
    }
  }
}

/** `count` parts' worth: the first four at once, the rest as a slow source gives them (an S3 read, say). */
async function* chunks(count: number) {
  for (let i = 0; i < count; i++) {
    if (i >= 4) await new Promise((resolve) => setTimeout(resolve, 30));
    yield new Uint8Array(5 * MIB).fill(i + 1);
  }
}

describe("putNewFromChunks", () => {
  it("sends every part, several at once, and completes them in order", async () => {
    const s3 = new StandInS3();
    await new CheckpointBucket(s3 as unknown as S3Client, "bucket").putNewFromChunks("k", chunks(9));
    expect(s3.completed).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [part, body] of s3.received) expect(body.every((b) => b === part)).toBe(true);
  });

  it("fails the write, completing nothing, when a part fails while no wait is watching it", async () => {
    const s3 = new StandInS3({ part: 1, afterMs: 200 });
    const bucket = new CheckpointBucket(s3 as unknown as S3Client, "bucket");
    await expect(bucket.putNewFromChunks("k", chunks(16))).rejects.toThrow(/SlowDown/);
    expect(s3.completed).toBeUndefined();
    expect(s3.aborted).toBe(true);
  });
});

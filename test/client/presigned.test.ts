import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import S3rver from "s3rver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http } from "../../client/api/http.ts";
import { freePort } from "../../infra/local/emulators.ts";

// The client's transfers against a real S3 API (s3rver) through presigned URLs, as the fedavg client uses them.
let dir: string;
let s3rver: S3rver;
let s3: S3Client;
const bucket = "ferret-test";
const noRetry = { baseMs: 1, capMs: 1, giveUpAfterMs: 0 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ferret-presigned-"));
  const port = await freePort();
  s3rver = new S3rver({
    address: "127.0.0.1",
    port,
    silent: true,
    directory: join(dir, "s3"),
    configureBuckets: [{ name: bucket }],
  });
  await s3rver.run();
  s3 = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
});
afterAll(async () => {
  s3.destroy();
  await s3rver.close();
  await rm(dir, { recursive: true, force: true });
});

const presignPut = (key: string) =>
  getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 600 });
const presignGet = (key: string) =>
  getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 600 });

describe("presigned transfers", () => {
  it("streams a file to a presigned PUT with progress, returns its SHA-256 and counts every byte as uplink", async () => {
    const body = Buffer.alloc(3 * 1024 * 1024 + 5);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) % 251;
    const path = join(dir, "update.f32");
    await writeFile(path, body);
    const http = new Http("http://127.0.0.1:1", noRetry);
    const progress: number[] = [];
    const sent = await http.putFile(await presignPut("staging/a.f32"), path, (done, total) => {
      expect(total).toBe(body.length);
      progress.push(done);
    });
    expect(sent).toEqual({ bytes: body.length, sha256: createHash("sha256").update(body).digest("hex") });
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toBe(body.length);
    expect(progress.every((d, i) => i === 0 || d > (progress[i - 1] as number))).toBe(true);
    expect(http.bytes.up).toBeGreaterThan(body.length);
    expect(http.bytes.up).toBeLessThan(body.length + 2048); // the body plus one request's line and headers

    // What S3 stored is exactly the file; downloading it counts as downlink.
    const down = http.bytes.down;
    const stored = await http.download(await presignGet("staging/a.f32"));
    expect(Buffer.from(stored).equals(body)).toBe(true);
    expect(http.bytes.down - down).toBeGreaterThanOrEqual(body.length);
  });

  it("throws the storage error S3 answers (here: no such bucket) instead of reporting success", async () => {
    const path = join(dir, "small.f32");
    await writeFile(path, new Uint8Array(16));
    const url = await getSignedUrl(s3, new PutObjectCommand({ Bucket: "missing", Key: "b.f32" }), {
      expiresIn: 600,
    });
    const http = new Http("http://127.0.0.1:1", noRetry);
    await expect(http.putFile(url, path)).rejects.toThrow(/404 storage: .*NoSuchBucket/s);
  });
});

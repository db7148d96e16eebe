// Checkpoint objects in S3. Keys are immutable: a writer first checks whether its key already exists, and a
// deterministic re-run then finds the same bytes there (AWS S3 also enforces If-None-Match; emulators may not).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { partBytesFor } from "../../core/multipart.ts";

/** fedavg staging: client-written, checked and copied on commit, then only waste. */
export const STAGING_PREFIX = "staging/";

export const objectKeys = {
  checkpointPrefix: (runId: string, checkpoint: number) => `runs/${runId}/rounds/${checkpoint}/`,
  shard: (runId: string, checkpoint: number, index: number) =>
    `runs/${runId}/rounds/${checkpoint}/shards/${String(index).padStart(5, "0")}.bin`,
  shardDigest: (runId: string, checkpoint: number, index: number) =>
    `runs/${runId}/rounds/${checkpoint}/shards/${String(index).padStart(5, "0")}.json`,
  manifest: (runId: string, checkpoint: number) => `runs/${runId}/rounds/${checkpoint}/manifest.json`,
  /**
   * fedavg: where a client PUTs its update through a presigned URL; the server only reads it. Under its own top
   * prefix so one lifecycle rule can expire what clients wrote (S3 rules match prefixes, not wildcards).
   */
  stagedUpdate: (runId: string, round: number, clientId: string) =>
    `${STAGING_PREFIX}runs/${runId}/rounds/${round}/${clientId}.f32`,
  /** fedavg: the update as the server checked and committed it; only the server writes here. */
  update: (runId: string, round: number, clientId: string) =>
    `runs/${runId}/rounds/${round}/updates/${clientId}.f32`,
  importUpload: (runId: string) => `runs/${runId}/import/initial.safetensors`,
  export: (runId: string, checkpoint: number) => `runs/${runId}/exports/${checkpoint}.safetensors`,
};

export class ObjectExists extends Error {
  override name = "ObjectExists";
}

const PRESIGN_SECONDS = 3600;
/** Parts uploaded at once by putNewFromChunks: S3 gives each connection its own share of bandwidth. */
const PARTS_IN_FLIGHT = 4;

export class CheckpointBucket {
  constructor(
    private readonly s3: S3Client,
    readonly bucketName: string,
  ) {}

  async exists(key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
      return true;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404 || (error as Error).name === "NotFound") return false;
      throw error;
    }
  }

  /** Writes `body` under a key that must not exist yet; throws ObjectExists when it does. */
  async putNew(key: string, body: Uint8Array | string, contentType: string): Promise<void> {
    if (await this.exists(key)) throw new ObjectExists(`s3://${this.bucketName}/${key} already exists`);
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucketName,
        Key: key,
        Body: body,
        ContentType: contentType,
        IfNoneMatch: "*",
      }),
    );
  }

  /** Writes `body` under `key` whether or not it exists: only for objects no committed checkpoint names yet. */
  async putUncommitted(key: string, body: Uint8Array | string, contentType: string): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucketName, Key: key, Body: body, ContentType: contentType }),
    );
  }

  /** Fills `into` from the object's bytes [start, start + into.byteLength), streaming: no second copy. */
  async readInto(key: string, into: Uint8Array, start = 0): Promise<void> {
    const end = start + into.byteLength - 1;
    const out = await this.s3.send(
      new GetObjectCommand({ Bucket: this.bucketName, Key: key, Range: `bytes=${start}-${end}` }),
    );
    let filled = 0;
    for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
      if (filled + chunk.byteLength > into.byteLength)
        throw new Error(`s3://${this.bucketName}/${key}: longer than asked`);
      into.set(chunk, filled);
      filled += chunk.byteLength;
    }
    if (filled !== into.byteLength) {
      throw new Error(
        `s3://${this.bucketName}/${key}: got ${filled} bytes of ${into.byteLength} from ${start}`,
      );
    }
  }

  async readText(key: string): Promise<string | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key }));
      return await (out.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (error) {
      if ((error as Error).name === "NoSuchKey") return undefined;
      throw error;
    }
  }

  async size(key: string): Promise<number> {
    const out = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucketName, Key: key }));
    return out.ContentLength ?? 0;
  }

  presignGet(key: string): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: this.bucketName, Key: key }), {
      expiresIn: PRESIGN_SECONDS,
    });
  }

  /**
   * A URL that lets its holder PUT an object of exactly `bytes` bytes at `key` until it expires. The length is
   * signed: without it, one URL took up to 5 GB a PUT, as many PUTs as its holder liked, and the bucket keeps
   * every overwritten version for a while.
   */
  presignPut(key: string, bytes: number, expiresIn: number): Promise<string> {
    return getSignedUrl(
      this.s3,
      new PutObjectCommand({ Bucket: this.bucketName, Key: key, ContentLength: bytes }),
      { expiresIn },
    );
  }

  /** Starts a multipart upload that clients PUT parts to through presigned URLs (partUrls). */
  async startMultipart(key: string): Promise<string> {
    const created = await this.s3.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucketName,
        Key: key,
        ContentType: "application/octet-stream",
      }),
    );
    return created.UploadId as string;
  }

  /** Presigned PUT URLs of parts first..first+count−1 of a multipart upload, valid for PRESIGN_SECONDS. */
  partUrls(key: string, uploadId: string, first: number, count: number): Promise<string[]> {
    return Promise.all(
      Array.from({ length: count }, (_, i) =>
        getSignedUrl(
          this.s3,
          new UploadPartCommand({
            Bucket: this.bucketName,
            Key: key,
            UploadId: uploadId,
            PartNumber: first + i,
          }),
          { expiresIn: PRESIGN_SECONDS },
        ),
      ),
    );
  }

  async *readChunks(key: string): AsyncIterable<Uint8Array> {
    const out = await this.s3.send(new GetObjectCommand({ Bucket: this.bucketName, Key: key }));
    yield* out.Body as AsyncIterable<Uint8Array>;
  }

  /**
   * Writes a new object from a stream of chunks, as a multipart upload whose parts go up PARTS_IN_FLIGHT at once:
   * memory is that many parts, not the object. Parts are 5 MiB, or larger where `expectedBytes` would otherwise
   * need more than 1,000 of them (partBytesFor): at 5 MiB one at a time, an 8B model's 32 GB export was 6,127
   * parts in series, and a model over 13B would have passed S3's 10,000. If the stream or `beforeComplete` throws, the
   * upload is aborted and no object appears.
   */
  async putNewFromChunks(
    key: string,
    chunks: AsyncIterable<Uint8Array>,
    beforeComplete: () => Promise<void> = async () => {},
    expectedBytes = 0,
  ): Promise<void> {
    if (await this.exists(key)) throw new ObjectExists(`s3://${this.bucketName}/${key} already exists`);
    const { UploadId } = await this.s3.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucketName, Key: key }),
    );
    const partBytes = partBytesFor(expectedBytes);
    const parts: { partNumber: number; etag: string }[] = [];
    const inFlight = new Set<Promise<void>>();
    const free: Uint8Array<ArrayBuffer>[] = [];
    let part = new Uint8Array(partBytes);
    let filled = 0;
    let numbered = 0;
    // A part's failure is kept here, not left in its promise: that promise leaves inFlight when it settles, and
    // a completion without the part would be an object with a gap that S3 accepts.
    let failure: { error: unknown } | undefined;
    const flush = async () => {
      const PartNumber = ++numbered;
      const buffer = part;
      const Body = buffer.subarray(0, filled);
      const sending: Promise<void> = this.s3
        .send(new UploadPartCommand({ Bucket: this.bucketName, Key: key, UploadId, PartNumber, Body }))
        .then(
          (out) => {
            parts.push({ partNumber: PartNumber, etag: out.ETag as string });
            free.push(buffer);
          },
          (error: unknown) => {
            failure ??= { error };
          },
        )
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
      part = free.pop() ?? new Uint8Array(partBytes);
      filled = 0;
      if (inFlight.size >= PARTS_IN_FLIGHT) await Promise.race(inFlight);
      if (failure) throw failure.error;
    };
    try {
      for await (const chunk of chunks) {
        for (let used = 0; used < chunk.byteLength; ) {
          const take = Math.min(chunk.byteLength - used, partBytes - filled);
          part.set(chunk.subarray(used, used + take), filled);
          filled += take;
          used += take;
          if (filled === partBytes) await flush();
        }
      }
      if (filled > 0 || numbered === 0) await flush();
      await Promise.all(inFlight);
      if (failure) throw failure.error;
      if (parts.length !== numbered)
        throw new Error(`${key}: ${parts.length} of ${numbered} parts were sent`);
      parts.sort((x, y) => x.partNumber - y.partNumber);
      await beforeComplete();
      await this.completeMultipart(key, UploadId as string, parts);
    } catch (error) {
      await Promise.allSettled(inFlight);
      // The parts stay invisible either way. The caller must learn why the write stopped, so an abort that fails
      // too (s3rver has no AbortMultipartUpload) is logged and left to the bucket's lifecycle rule.
      await this.s3
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucketName, Key: key, UploadId }))
        .catch(async (abortError: Error) => {
          // Imported here, not at the top: Powertools reads its environment when first loaded, and the local stack
          // sets that environment after this module is loaded.
          const { logger } = await import("../observability.ts");
          logger.warn("multipart upload not aborted", {
            key,
            uploadId: UploadId,
            reason: abortError.message,
          });
        });
      throw error;
    }
  }

  async completeMultipart(key: string, uploadId: string, parts: { partNumber: number; etag: string }[]) {
    await this.s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucketName,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }),
    );
  }
}

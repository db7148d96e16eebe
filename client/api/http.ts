// HTTP to the Ferret API and to presigned S3 URLs: typed errors, retries when the server is unreachable or busy,
// and a count of the bytes that went each way (what the demo and the end-to-end test report per round).
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type BackoffOptions, DEFAULT_BACKOFF, withBackoff } from "./backoff.ts";
import type { Signer } from "./sigv4.ts";

/** The server answered with a 4xx/5xx JSON error: `code` is the API's error code (e.g. "duplicate_upload"). */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}

/** No connection could be made (refused, reset, DNS, timeout): worth retrying later. */
export class UnreachableError extends Error {
  override name = "UnreachableError";
}

/** Bytes sent and received: request line, headers and body as this client wrote and read them. */
export class ByteCounter {
  up = 0;
  down = 0;
  snapshot(): { up: number; down: number } {
    return { up: this.up, down: this.down };
  }
}

export interface RequestOptions {
  token?: string;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  /** Sign the request (SigV4 for IAM-authorized operator routes) instead of sending a bearer token. */
  sign?: Signer;
}

/** Headers and body of a request: bearer token, then a JSON or octet-stream body with its content type. */
export function encodeRequest(options: Omit<RequestOptions, "sign">): {
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
} {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    return { headers, body: JSON.stringify(options.json) };
  }
  if (options.bytes) headers["content-type"] ??= "application/octet-stream";
  return { headers, body: options.bytes };
}

const retryable = (error: Error) =>
  error instanceof UnreachableError ||
  (error instanceof ApiError && (error.status >= 500 || error.status === 429 || error.code === "round_busy"));

const headerBytes = (headers: Iterable<[string, string]>) =>
  [...headers].reduce((sum, [k, v]) => sum + k.length + v.length + 4, 0);

export class Http {
  readonly bytes = new ByteCounter();

  constructor(
    readonly endpoint: string,
    readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
  ) {
    try {
      new URL(endpoint);
    } catch {
      throw new TypeError(
        `endpoint ${JSON.stringify(endpoint)} is not a URL; expected e.g. http://127.0.0.1:4000`,
      );
    }
  }

  /** Calls an API route; JSON in, JSON out. 4xx errors throw ApiError at once; outages are retried. */
  json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return withBackoff(
      async () => {
        const response = await this.send(method, `${this.endpoint.replace(/\/$/, "")}${path}`, options);
        const text = await this.readText(response);
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : {};
        } catch {
          throw new ApiError(response.status, "not_json", `${method} ${path} answered ${text.slice(0, 200)}`);
        }
        if (!response.ok) {
          const { error, message } = body as { error?: string; message?: string };
          throw new ApiError(response.status, error ?? "error", message ?? text);
        }
        return body as T;
      },
      retryable,
      this.backoff,
    );
  }

  /** Fetches a presigned URL into memory. */
  download(url: string): Promise<Uint8Array> {
    return withBackoff(
      async () => {
        const response = await this.send("GET", url, {});
        const bytes = new Uint8Array(await response.arrayBuffer());
        this.bytes.down += bytes.byteLength;
        if (!response.ok) throw new ApiError(response.status, "storage", Buffer.from(bytes).toString("utf8"));
        return bytes;
      },
      retryable,
      this.backoff,
    );
  }

  /**
   * Streams a presigned URL into a file (written under a temporary name, renamed when complete), reporting
   * progress against the Content-Length. Returns the bytes written.
   */
  downloadToFile(
    url: string,
    path: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<number> {
    return withBackoff(
      async () => {
        const response = await this.send("GET", url, {});
        if (!response.ok || !response.body) {
          throw new ApiError(response.status, "storage", await this.readText(response));
        }
        const total = Number(response.headers.get("content-length") ?? 0);
        const temporary = `${path}.part-${process.pid}`;
        let done = 0;
        const counted = new TransformStream<Uint8Array, Uint8Array>({
          transform: (chunk, controller) => {
            done += chunk.byteLength;
            this.bytes.down += chunk.byteLength;
            onProgress?.(done, total);
            controller.enqueue(chunk);
          },
        });
        try {
          await pipeline(
            Readable.fromWeb(response.body.pipeThrough(counted) as never),
            createWriteStream(temporary),
          );
          await rename(temporary, path);
        } catch (error) {
          await rm(temporary, { force: true });
          throw error;
        }
        return done;
      },
      retryable,
      this.backoff,
    );
  }

  /** PUTs bytes to a presigned URL; returns the ETag (multipart parts need it). */
  upload(url: string, bytes: Uint8Array): Promise<string> {
    return withBackoff(
      async () => {
        const response = await this.send("PUT", url, { bytes });
        const text = await this.readText(response);
        if (!response.ok) throw new ApiError(response.status, "storage", text);
        return response.headers.get("etag") ?? "";
      },
      retryable,
      this.backoff,
    );
  }

  /**
   * Streams a file to a presigned PUT URL (S3 needs a Content-Length, so this is node:http, not fetch's chunked
   * upload), reporting progress and hashing the bytes as they go. Every byte sent counts as uplink. Returns the
   * bytes sent and their SHA-256 (hex): what was actually stored, not what the file held before.
   */
  putFile(
    url: string,
    path: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ bytes: number; sha256: string }> {
    return withBackoff(
      async () => {
        const total = (await stat(path)).size;
        const target = new URL(url);
        const headers = { "content-type": "application/octet-stream", "content-length": String(total) };
        this.bytes.up +=
          `PUT ${target.pathname}${target.search} HTTP/1.1\r\n`.length +
          headerBytes(Object.entries({ host: target.host, ...headers })) +
          2;
        const hash = createHash("sha256");
        let done = 0;
        const response = await new Promise<IncomingMessage>((resolve, reject) => {
          const send = target.protocol === "https:" ? httpsRequest : httpRequest;
          const request = send(target, { method: "PUT", headers, timeout: 120_000 }, resolve);
          const fail = (error: Error) => {
            request.destroy();
            reject(
              new UnreachableError(`PUT ${target.origin}${target.pathname}: ${describe(error)}`, {
                cause: error,
              }),
            );
          };
          request.on("error", fail);
          request.on("timeout", () => fail(new Error("timed out")));
          const file = createReadStream(path);
          file.on("error", (error) => {
            request.destroy();
            reject(error);
          });
          // pipe() leaves the file open when the request fails; every retry would leak a descriptor.
          request.on("close", () => file.destroy());
          file.on("data", (chunk) => {
            const piece = chunk as Buffer;
            hash.update(piece);
            done += piece.byteLength;
            this.bytes.up += piece.byteLength;
            onProgress?.(done, total);
          });
          file.pipe(request);
        });
        let text = "";
        for await (const chunk of response) text += String(chunk);
        const status = response.statusCode ?? 0;
        this.bytes.down +=
          `HTTP/1.1 ${status}\r\n`.length +
          headerBytes(Object.entries(response.headers).map(([k, v]) => [k, String(v)])) +
          2 +
          Buffer.byteLength(text);
        if (status < 200 || status >= 300) throw new ApiError(status, "storage", text);
        return { bytes: done, sha256: hash.digest("hex") };
      },
      retryable,
      this.backoff,
    );
  }

  private async send(method: string, url: string, options: RequestOptions): Promise<Response> {
    const { headers, body } = encodeRequest(options);
    const target = new URL(url);
    const sent = options.sign ? await options.sign({ method, url: target, headers, body }) : headers;
    this.bytes.up +=
      `${method} ${target.pathname}${target.search} HTTP/1.1\r\n`.length +
      headerBytes(Object.entries({ host: target.host, ...sent })) +
      2 +
      (typeof body === "string" ? Buffer.byteLength(body) : (body?.byteLength ?? 0));
    let response: Response;
    try {
      response = await fetch(url, { method, headers: sent, body, signal: AbortSignal.timeout(120_000) });
    } catch (error) {
      throw new UnreachableError(`${method} ${target.origin}${target.pathname}: ${describe(error)}`, {
        cause: error,
      });
    }
    this.bytes.down += `HTTP/1.1 ${response.status}\r\n`.length + headerBytes(response.headers) + 2;
    return response;
  }

  private async readText(response: Response): Promise<string> {
    const text = await response.text();
    this.bytes.down += Buffer.byteLength(text);
    return text;
  }
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

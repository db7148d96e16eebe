// HTTP to the Ferret API and to presigned S3 URLs: retries when the server is unreachable or busy,
// and a count of the bytes that went each way (what the demo and the end-to-end test report per round).
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { pipeline } from "node:stream/promises";
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from "../../core/protocol.ts";
import { type BackoffOptions, DEFAULT_BACKOFF, withBackoff } from "./backoff.ts";
import {
  ApiError,
  OutcomeUnknownError,
  OversizedReplyError,
  requireProtocol,
  UnreachableError,
} from "./errors.ts";
import type { Signer } from "./sigv4.ts";

/** Bytes sent and received: request line, headers and body as this client wrote and read them. */
export class ByteCounter {
  up = 0;
  down = 0;
  snapshot(): { up: number; down: number } {
    return { up: this.up, down: this.down };
  }
}

/** How long a request may wait on the network; none limits a whole transfer, as a slow one may be long. */
export interface Timeouts {
  /** From the start of sending (the request's body included) to the reply's headers; an export takes a while. */
  headersMs: number;
  /** The longest a reply's body may go without a byte arriving. */
  idleMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { headersMs: 120_000, idleMs: 60_000 };

export interface RequestOptions {
  token?: string;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  /** Sign the request (SigV4 for IAM-authorized operator routes) instead of sending a bearer token. */
  sign?: Signer;
}

export interface ApiRequest extends RequestOptions {
  /**
   * Whether sending the request twice has the effect of sending it once. If not, it is retried only when it surely
   * never reached the server (no connection made, or a refusal such as 429 that says nothing was done); a 5xx or a
   * connection lost after sending throws OutcomeUnknownError instead.
   */
  idempotent: boolean;
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

// 429 (API Gateway throttles before the integration runs) and round_busy (the upload transaction was refused)
// both say the server did nothing. Any other 5xx, 502-504 from a gateway included, may come after the handler ran.
const surelyNotDone = (error: Error) =>
  (error instanceof UnreachableError && error.unsent) ||
  (error instanceof ApiError && (error.status === 429 || error.code === "round_busy"));

// Codes undici's fetch gives (as the cause of its "fetch failed") when no connection could be opened.
const NO_CONNECTION = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** A reply whose body has not been read yet: `body` yields its chunks, counting them and timing out when idle. */
interface Reply {
  response: Response;
  body: AsyncGenerator<Uint8Array, void, undefined>;
  /** Method, origin and path: what errors name (never the query, which holds a presigned URL's signature). */
  where: string;
}

const abortAfter = (controller: AbortController, ms: number, what: string) =>
  setTimeout(() => controller.abort(new Error(`timed out: ${what} for ${ms / 1000} s`)), ms);

const headerBytes = (headers: Iterable<[string, string]>) =>
  [...headers].reduce((sum, [k, v]) => sum + k.length + v.length + 4, 0);

export class Http {
  readonly bytes = new ByteCounter();

  constructor(
    readonly endpoint: string,
    readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
    readonly timeouts: Timeouts = DEFAULT_TIMEOUTS,
  ) {
    try {
      new URL(endpoint);
    } catch {
      throw new TypeError(
        `endpoint ${JSON.stringify(endpoint)} is not a URL; expected e.g. http://127.0.0.1:4000`,
      );
    }
  }

  /** Calls an API route; JSON in, JSON out. 4xx errors throw ApiError at once; outages are retried if safe. */
  async json<T>(method: string, path: string, options: ApiRequest): Promise<T> {
    const stated = {
      ...options,
      headers: { ...options.headers, [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
    };
    const attempt = async (moved: () => void) => {
      const reply = await this.send(method, `${this.endpoint.replace(/\/$/, "")}${path}`, stated, moved);
      const { response } = reply;
      const text = await readText(reply);
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
      requireProtocol(response, `${method} ${path}`, options.idempotent);
      return body as T;
    };
    try {
      return await withBackoff(attempt, options.idempotent ? retryable : surelyNotDone, this.backoff);
    } catch (error) {
      if (options.idempotent || !(error instanceof Error) || !retryable(error)) throw error;
      throw new OutcomeUnknownError(
        `${method} ${path} failed after the server may have received it (${error.message}); it was not sent again ` +
          "because a repeat could do the work twice. Check whether it took effect before trying again.",
        { cause: error },
      );
    }
  }

  /** Fetches a presigned URL into memory: at most `maxBytes` of it where the caller knows the size to expect,
   * since otherwise whoever answers chooses it. */
  download(url: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array> {
    return withBackoff(
      async (moved) => {
        const reply = await this.send("GET", url, {}, moved);
        if (!reply.response.ok) throw new ApiError(reply.response.status, "storage", await readText(reply));
        return readAll(reply, maxBytes);
      },
      retryable,
      this.backoff,
    );
  }

  /**
   * Streams a presigned URL into a file (written under a temporary name, renamed when complete), reporting
   * progress against the Content-Length. A retry starts over, so progress may go back to 0. Returns the bytes
   * written.
   */
  downloadToFile(
    url: string,
    path: string,
    onProgress?: (done: number, total: number) => void,
  ): Promise<number> {
    return withBackoff(
      async (moved) => {
        const reply = await this.send("GET", url, {}, moved);
        const { response } = reply;
        if (!response.ok) throw new ApiError(response.status, "storage", await readText(reply));
        const total = Number(response.headers.get("content-length") ?? 0);
        const temporary = `${path}.part-${process.pid}`;
        let done = 0;
        const counted = async function* () {
          for await (const chunk of reply.body) {
            done += chunk.byteLength;
            onProgress?.(done, total);
            yield chunk;
          }
        };
        try {
          // A failed read throws the body's UnreachableError (retried); a failed write its own error (not retried).
          await pipeline(counted, createWriteStream(temporary));
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
      async (moved) => {
        const reply = await this.send("PUT", url, { bytes }, moved);
        const text = await readText(reply);
        if (!reply.response.ok) throw new ApiError(reply.response.status, "storage", text);
        return reply.response.headers.get("etag") ?? "";
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
      async (moved) => {
        const total = (await stat(path)).size;
        const target = new URL(url);
        const headers = { "content-type": "application/octet-stream", "content-length": String(total) };
        this.bytes.up +=
          `PUT ${target.pathname}${target.search} HTTP/1.1\r\n`.length +
          headerBytes(Object.entries({ host: target.host, ...headers })) +
          2;
        const hash = createHash("sha256");
        let done = 0;
        const where = `PUT ${target.origin}${target.pathname}`;
        const response = await new Promise<IncomingMessage>((resolve, reject) => {
          const send = target.protocol === "https:" ? httpsRequest : httpRequest;
          // The socket's idle timeout: it covers the wait for the reply, so it is the headers timeout.
          const timeout = this.timeouts.headersMs;
          const request = send(target, { method: "PUT", headers, timeout }, resolve);
          const fail = (error: Error) => {
            request.destroy();
            reject(new UnreachableError(`${where}: ${describe(error)}`, { cause: error }));
          };
          request.on("error", fail);
          request.on("timeout", () => fail(new Error(`no data moved either way for ${timeout / 1000} s`)));
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
            moved();
            onProgress?.(done, total);
          });
          file.pipe(request);
        });
        const status = response.statusCode ?? 0;
        this.bytes.down +=
          `HTTP/1.1 ${status}\r\n`.length +
          headerBytes(Object.entries(response.headers).map(([k, v]) => [k, String(v)])) +
          2;
        const chunks: Buffer[] = [];
        try {
          for await (const chunk of response) {
            chunks.push(chunk as Buffer);
            this.bytes.down += (chunk as Buffer).byteLength;
          }
        } catch (error) {
          throw new UnreachableError(`${where}: reading the reply failed (${describe(error)})`, {
            cause: error,
          });
        }
        const text = Buffer.concat(chunks).toString("utf8");
        if (status < 200 || status >= 300) throw new ApiError(status, "storage", text);
        return { bytes: done, sha256: hash.digest("hex") };
      },
      retryable,
      this.backoff,
    );
  }

  /** Sends a request and waits for the reply's headers (at most `timeouts.headersMs`); the body is left to read. */
  private async send(
    method: string,
    url: string,
    options: RequestOptions,
    moved: () => void = () => {},
  ): Promise<Reply> {
    const { headers, body } = encodeRequest(options);
    const target = new URL(url);
    const where = `${method} ${target.origin}${target.pathname}`;
    const sent = options.sign ? await options.sign({ method, url: target, headers, body }) : headers;
    this.bytes.up +=
      `${method} ${target.pathname}${target.search} HTTP/1.1\r\n`.length +
      headerBytes(Object.entries({ host: target.host, ...sent })) +
      2 +
      (typeof body === "string" ? Buffer.byteLength(body) : (body?.byteLength ?? 0));
    // One controller for the whole exchange: the headers timeout and the body's idle timeout both abort it.
    const controller = new AbortController();
    const timer = abortAfter(controller, this.timeouts.headersMs, "no reply headers");
    let response: Response;
    try {
      response = await fetch(url, { method, headers: sent, body, signal: controller.signal });
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      throw new UnreachableError(`${where}: ${describe(error)}`, {
        cause: error,
        unsent: code !== undefined && NO_CONNECTION.has(code),
      });
    } finally {
      clearTimeout(timer);
    }
    this.bytes.down += `HTTP/1.1 ${response.status}\r\n`.length + headerBytes(response.headers) + 2;
    return { response, body: this.bodyOf(response, controller, where, moved), where };
  }

  /**
   * The chunks of a reply's body, each counted as downlink (and as data moving, for the give-up limit) when it
   * arrives. A read that waits more than `timeouts.idleMs`, or a connection that breaks, throws an
   * UnreachableError: the request is then made again.
   */
  private async *bodyOf(response: Response, controller: AbortController, where: string, moved: () => void) {
    if (!response.body) return;
    const reader = response.body.getReader();
    const read = async () => {
      // Only the wait for the network counts as idle, not the time the caller spends on a chunk (a disk write).
      const timer = abortAfter(controller, this.timeouts.idleMs, "no body data");
      try {
        return await reader.read();
      } catch (error) {
        throw new UnreachableError(`${where}: reading the body failed (${describe(error)})`, {
          cause: error,
        });
      } finally {
        clearTimeout(timer);
      }
    };
    let next = await read();
    try {
      for (; !next.done; next = await read()) {
        this.bytes.down += next.value.byteLength;
        moved();
        yield next.value;
      }
    } finally {
      // A caller that stops early (its write failed) must not leave the connection open.
      if (!next.done) controller.abort();
    }
  }
}

/** The whole body in an array of its own (a Buffer may share its memory with others, from Node's pool). */
async function readAll(reply: Reply, maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of reply.body) {
    size += chunk.byteLength;
    // Stopping the loop closes the connection (bodyOf's finally).
    if (size > maxBytes)
      throw new OversizedReplyError(`${reply.where}: more than the ${maxBytes} bytes expected`);
    chunks.push(chunk);
  }
  const all = new Uint8Array(chunks.reduce((n, chunk) => n + chunk.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return all;
}

const readText = async (reply: Reply) => new TextDecoder().decode(await readAll(reply));

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

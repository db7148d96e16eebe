import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { GaveUpError } from "../../client/api/backoff.ts";
import { OversizedReplyError, UnreachableError } from "../../client/api/errors.ts";
import { Http } from "../../client/api/http.ts";
import { listen } from "./fake-server.ts";

// Transfers against a real local server that breaks them: a reply without headers, a body that stalls or whose
// connection drops. The timeouts are a second here, so every failure shows within a test, and a busy machine's
// scheduling delays (tens of milliseconds) stay far below them.
const backoff = { baseMs: 1, capMs: 5, giveUpAfterMs: 6_000 };
const timeouts = { headersMs: 1_000, idleMs: 1_000 };
const body = Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => (i * 31) % 251));

let server: Awaited<ReturnType<typeof listen>> | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Headers and the first 100 kB of `body`, then the connection is dropped (or, if `stall`, left silent). */
function breakOff(response: ServerResponse, stall = false): void {
  response.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": String(body.length),
  });
  response.write(body.subarray(0, 100_000));
  if (!stall) setTimeout(() => response.socket?.destroy(), 50);
}

const whole = (response: ServerResponse) => {
  response.writeHead(200, { "content-type": "application/octet-stream" });
  response.end(body);
};

describe("transfers that break", () => {
  it("downloads again when the connection drops mid-body, counting the bytes of both attempts", async () => {
    server = await listen((_, response, n) => (n === 1 ? breakOff(response) : whole(response)));
    const http = new Http(server.url, backoff, timeouts);
    const bytes = await http.download(`${server.url}/shard`);
    expect(Buffer.from(bytes).equals(body)).toBe(true);
    expect(server.requests()).toBe(2);
    // The second attempt's whole body plus whatever of the first one was read before the drop, and headers.
    expect(http.bytes.down).toBeGreaterThan(body.length + 200);
    expect(http.bytes.down).toBeLessThan(body.length + 100_000 + 2048);
    expect(http.bytes.up).toBeGreaterThan(2 * "GET /shard HTTP/1.1\r\n".length);
  }, 10_000);

  it("restarts a broken file download from scratch and leaves only the complete file", async () => {
    server = await listen((_, response, n) => (n === 1 ? breakOff(response) : whole(response)));
    const dir = await mkdtemp(join(tmpdir(), "ferret-http-"));
    try {
      const path = join(dir, "model.safetensors");
      const progress: number[] = [];
      const written = await new Http(server.url, backoff, timeouts).downloadToFile(
        `${server.url}/export`,
        path,
        (done) => progress.push(done),
      );
      expect(written).toBe(body.length);
      expect((await readFile(path)).equals(body)).toBe(true);
      expect(await readdir(dir)).toEqual(["model.safetensors"]);
      expect(progress.at(-1)).toBe(body.length);
      expect(progress.some((done, i) => i > 0 && done < (progress[i - 1] as number))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 10_000);

  it("retries a reply whose body stalls instead of waiting for it forever", async () => {
    server = await listen((_, response, n) => (n === 1 ? breakOff(response, true) : whole(response)));
    const bytes = await new Http(server.url, backoff, timeouts).download(`${server.url}/shard`);
    expect(bytes.byteLength).toBe(body.length);
    expect(server.requests()).toBe(2);
  }, 10_000);

  it("retries a request whose reply headers never come", async () => {
    server = await listen((_, response, n) => {
      if (n > 1) response.end(JSON.stringify({ round: 3 }));
    });
    const http = new Http(server.url, backoff, timeouts);
    expect(await http.json("GET", "/runs/r/assignment", { idempotent: true })).toEqual({ round: 3 });
    expect(server.requests()).toBe(2);
  }, 10_000);

  it("retries an API reply that breaks off mid-body", async () => {
    server = await listen((_, response, n) => {
      response.writeHead(200, { "content-type": "application/json", "content-length": "13" });
      if (n === 1) response.write('{"rou');
      else response.end('{"round": 3 }');
      if (n === 1) setTimeout(() => response.socket?.destroy(), 50);
    });
    const http = new Http(server.url, backoff, timeouts);
    expect(await http.json("GET", "/runs/r/assignment", { idempotent: true })).toEqual({ round: 3 });
    expect(server.requests()).toBe(2);
  }, 10_000);

  it("stops reading a download past the bytes the caller expects, once, without retrying", async () => {
    server = await listen((_, response) => whole(response));
    const http = new Http(server.url, backoff, timeouts);
    const error = await http.download(`${server.url}/shard?X-Amz-Signature=secret`, 4096).catch((e) => e);
    expect(error).toBeInstanceOf(OversizedReplyError);
    expect(error.message).toContain("more than the 4096 bytes expected");
    expect(error.message).not.toContain("secret");
    expect(http.bytes.down).toBeLessThan(body.length);
    expect(server.requests()).toBe(1);
    expect((await http.download(`${server.url}/shard`, body.length)).byteLength).toBe(body.length);
  });

  it("lets a body take far longer than both timeouts while it keeps moving", async () => {
    server = await listen((_, response) => {
      response.writeHead(200, { "content-length": String(25 * 1000) });
      let sent = 0;
      const timer = setInterval(() => {
        response.write(body.subarray(sent * 1000, ++sent * 1000));
        if (sent === 25) {
          clearInterval(timer);
          response.end();
        }
      }, 100);
      response.on("close", () => clearInterval(timer));
    });
    const bytes = await new Http(server.url, backoff, timeouts).download(`${server.url}/slow`);
    expect(bytes.byteLength).toBe(25_000);
    expect(server.requests()).toBe(1);
  }, 10_000);

  it("retries a body that broke after moving for longer than the give-up limit", async () => {
    server = await listen((_, response, n) => {
      if (n > 1) return whole(response);
      response.writeHead(200, { "content-length": String(body.length) });
      let sent = 0;
      const timer = setInterval(() => {
        response.write(body.subarray(sent * 1000, ++sent * 1000));
        if (sent === 20) {
          clearInterval(timer);
          response.socket?.destroy();
        }
      }, 100);
      response.on("close", () => clearInterval(timer));
    });
    // 2 s of body, then a reset: past the 1.5 s limit, but the server was reachable all along.
    const http = new Http(server.url, { ...backoff, giveUpAfterMs: 1_500 }, timeouts);
    expect((await http.download(`${server.url}/shard`)).byteLength).toBe(body.length);
    expect(server.requests()).toBe(2);
  }, 10_000);

  it("gives up on a body that always stalls, naming the URL and the timeout", async () => {
    server = await listen((_, response) => breakOff(response, true));
    const http = new Http(server.url, { ...backoff, giveUpAfterMs: 500 }, timeouts);
    const error = await http.download(`${server.url}/shard`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GaveUpError);
    const cause = (error as GaveUpError).cause;
    expect(cause).toBeInstanceOf(UnreachableError);
    expect((cause as Error).message).toBe(
      `GET ${server.url}/shard: reading the body failed (timed out: no body data for 1 s)`,
    );
  }, 10_000);

  it("does not retry a download whose file cannot be written", async () => {
    server = await listen((_, response) => whole(response));
    const http = new Http(server.url, backoff, timeouts);
    const path = join(tmpdir(), "ferret-no-such-dir", "model.safetensors");
    await expect(http.downloadToFile(`${server.url}/export`, path)).rejects.toMatchObject({ code: "ENOENT" });
    expect(server.requests()).toBe(1);
  }, 10_000);
});

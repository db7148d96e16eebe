import type { IncomingMessage, ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, OutcomeUnknownError } from "../../client/api/errors.ts";
import { Http } from "../../client/api/http.ts";
import { ClientApi, OperatorApi } from "../../client/api/routes.ts";
import { freePort } from "../../infra/local/emulators.ts";
import { listen } from "./fake-server.ts";

// Which requests are sent again after a failure: a request that is not idempotent (a new client, a new run) only
// when the server surely never saw it, since a repeat after a lost reply would do the work twice.
const backoff = { baseMs: 1, capMs: 5, giveUpAfterMs: 3_000 };
const timeouts = { headersMs: 1_000, idleMs: 1_000 };

let server: Awaited<ReturnType<typeof listen>> | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const reply = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
};

/** Runs `handle` once the request's body has arrived whole (the server has "done the work" from then on). */
const afterBody = (
  handle: (request: IncomingMessage, response: ServerResponse, n: number) => void,
  port = 0,
) =>
  listen((request, response, n) => {
    request.resume();
    request.on("end", () => handle(request, response, n));
  }, port);

const operator = (url: string, onWait?: () => void) =>
  new OperatorApi(new Http(url, { ...backoff, onWait }, timeouts), { adminToken: "admin" });

describe("retries and idempotency", () => {
  it("does not register a second client when the reply to the first is lost", async () => {
    const created: number[] = [];
    server = await afterBody((request, response, n) => {
      created.push(n);
      if (n === 1) request.socket.destroy();
      else reply(response, 201, { clientId: `client-${n}`, name: "a", token: "t" });
    });
    const error = await operator(server.url)
      .addClient("run-1", "a")
      .catch((e: unknown) => e);
    expect(created).toEqual([1]);
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect((error as Error).message).toMatch(
      /^POST \/runs\/run-1\/clients failed after the server may have received it \(.*UND_ERR_SOCKET\); it was not sent again/,
    );
  }, 5_000);

  it("does not create a second run after a 5xx, which may come after the run was stored", async () => {
    server = await afterBody((_, response, n) =>
      n === 1 ? reply(response, 504, { message: "gateway timeout" }) : reply(response, 201, { runId: "r2" }),
    );
    const error = await operator(server.url)
      .createRun({} as never)
      .catch((e: unknown) => e);
    expect(server.requests()).toBe(1);
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect((error as Error).cause).toMatchObject({ status: 504 });
  }, 5_000);

  it("sends a non-idempotent request again while no connection could be made", async () => {
    const port = await freePort();
    let waits = 0;
    const api = operator(`http://127.0.0.1:${port}`, () => {
      // The server comes up only after the first attempt was refused.
      if (waits++ === 0) {
        void afterBody((_, response) => reply(response, 201, { runId: "r1" }), port).then((s) => {
          server = s;
        });
      }
    });
    expect(await api.createRun({} as never)).toEqual({ runId: "r1" });
    expect(waits).toBeGreaterThan(0);
    expect(server?.requests()).toBe(1);
  }, 5_000);

  it("sends a non-idempotent request again after a 429, which says nothing was done", async () => {
    server = await afterBody((_, response, n) =>
      n === 1
        ? reply(response, 429, { message: "Too Many Requests" })
        : reply(response, 201, { clientId: "c", name: "a", token: "t" }),
    );
    expect(await operator(server.url).addClient("run-1", "a")).toMatchObject({ clientId: "c" });
    expect(server.requests()).toBe(2);
  }, 5_000);

  it("sends an upload again after a lost reply: the server refuses the repeat as a duplicate", async () => {
    server = await afterBody((request, response, n) => {
      if (n === 1) request.socket.destroy();
      else reply(response, 409, { error: "duplicate_upload", message: "already uploaded for round 0" });
    });
    const api = new ClientApi(new Http(server.url, backoff, timeouts), "run-1", "token");
    const error = await api.upload(0, new Float32Array(4), 10, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: "duplicate_upload" });
    expect(server.requests()).toBe(2);
  }, 5_000);
});

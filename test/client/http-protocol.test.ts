// The CLI states its protocol version on every API request and refuses a backend's success that states another
// (or none: a backend from before versions), since it may have misread the request or its reply.
import type { ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError, ProtocolMismatchError } from "../../client/api/errors.ts";
import { Http } from "../../client/api/http.ts";
import { EXIT, exitCodeOf } from "../../client/cli/output.ts";
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from "../../core/protocol.ts";
import { listen } from "./fake-server.ts";

const noRetry = { baseMs: 1, capMs: 1, giveUpAfterMs: 100 };
let server: Awaited<ReturnType<typeof listen>> | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A backend that answers every request with `status` and states `version` (or no version). */
async function backend(status: number, version: string | undefined, stated: (string | undefined)[] = []) {
  server = await listen((request, response: ServerResponse) => {
    stated.push(request.headers[PROTOCOL_HEADER] as string | undefined);
    if (version === undefined) response.removeHeader(PROTOCOL_HEADER);
    else response.setHeader(PROTOCOL_HEADER, version);
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(status < 300 ? { round: 3 } : { error: "forbidden", message: "no" }));
  });
  return new Http(server.url, noRetry);
}

describe("the protocol version", () => {
  it("is stated on every API request, and a backend stating the same is read", async () => {
    const stated: (string | undefined)[] = [];
    const http = await backend(200, String(PROTOCOL_VERSION), stated);
    expect(await http.json("GET", "/runs/r/assignment", { idempotent: true })).toEqual({ round: 3 });
    await http.json("POST", "/runs", { json: {}, idempotent: false });
    expect(stated).toEqual([String(PROTOCOL_VERSION), String(PROTOCOL_VERSION)]);
  });

  it("refuses a success from a backend that states none, naming what to deploy", async () => {
    const http = await backend(200, undefined);
    const read = await http.json("GET", "/runs/r", { idempotent: true }).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(ProtocolMismatchError);
    expect((read as Error).message).toMatch(/predates this CLI's protocol .*npx cdk deploy/);
    expect((read as Error).message).not.toContain("taken effect");
    expect(exitCodeOf(read)).toBe(EXIT.refused);
    const write = await http.json("POST", "/runs", { json: {}, idempotent: false }).catch((e: unknown) => e);
    expect((write as Error).message).toContain("the request may have taken effect");
  });

  it.each([
    [String(PROTOCOL_VERSION + 1), /upgrade the ferret CLI/],
    ["v2-beta", /the backend stated protocol "v2-beta", not a version number; this CLI speaks \d+$/],
  ])("refuses a success stating %s, saying which side to upgrade", async (version, message) => {
    const http = await backend(200, version);
    const error = await http.json("GET", "/runs/r", { idempotent: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProtocolMismatchError);
    expect((error as Error).message).toMatch(message);
  });

  it("leaves refusals the gateway answers itself (no version) as the refusals they are", async () => {
    const http = await backend(403, undefined);
    const error = await http.json("GET", "/runs/r", { idempotent: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(403);
  });
});

// node:http in front of the in-process handlers, built from functions/routes.ts like the HTTP API: the same paths,
// the client-token authorizer on client routes, and an admin bearer token standing in for IAM on operator routes.
import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import type { AuthorizerResult } from "../../functions/handlers/authorizer.ts";
import type { HttpEvent } from "../../functions/http.ts";
import { ROUTES, type Route } from "../../functions/routes.ts";

/** HTTP API's own payload limit; the upload handler applies the (smaller) coefficient limit itself. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;

type Handler = (event: HttpEvent, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

interface CompiledRoute extends Route {
  pattern: RegExp;
  names: string[];
  run: Handler;
}

const lambdaContext = (name: string) =>
  ({
    functionName: name,
    functionVersion: "$LATEST",
    awsRequestId: crypto.randomUUID(),
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: "1024",
    getRemainingTimeInMillis: () => 30_000,
  }) as Context;

async function compile(route: Route): Promise<CompiledRoute> {
  const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
  const pattern = new RegExp(`^${route.path.replace(/\{\w+\}/g, "([^/]+)")}$`);
  const module = (await import(/* @vite-ignore */ `../../functions/handlers/${route.handler}`)) as {
    handler: Handler;
  };
  return { ...route, pattern, names, run: module.handler };
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const reply = (status: number, error: string, message: string): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ error, message }),
});

function adminAllowed(header: string | undefined, adminToken: string): boolean {
  const given = Buffer.from(/^Bearer (\S+)$/.exec(header ?? "")?.[1] ?? "");
  const expected = Buffer.from(adminToken);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

type Authorize = (authorization: string | undefined) => Promise<AuthorizerResult>;

async function dispatch(
  routes: CompiledRoute[],
  authorize: Authorize,
  request: IncomingMessage,
  adminToken: string,
) {
  const url = new URL(request.url ?? "/", "http://local");
  const candidates = routes.filter((r) => r.pattern.test(url.pathname));
  const route = candidates.find((r) => r.method === request.method);
  if (!route)
    return reply(candidates.length ? 405 : 404, "no_route", `no route ${request.method} ${url.pathname}`);
  const headers = Object.fromEntries(
    Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(",") : v]),
  );
  let authorizer: HttpEvent["requestContext"]["authorizer"];
  if (route.auth === "operator") {
    if (!adminAllowed(headers.authorization, adminToken))
      return reply(403, "forbidden", "operator routes need the admin token");
  } else {
    if (!headers.authorization)
      return reply(401, "unauthorized", "missing Authorization: Bearer <client token>");
    const decision = await authorize(headers.authorization);
    if (!decision.isAuthorized || !decision.context)
      return reply(403, "forbidden", "client token is unknown or revoked");
    authorizer = { lambda: decision.context };
  }
  const body = await readBody(request);
  if (!body) return reply(413, "payload_too_large", `request body exceeds ${MAX_BODY_BYTES} bytes`);
  const binary = !(headers["content-type"] ?? "").startsWith("application/json");
  const match = route.pattern.exec(url.pathname) as RegExpExecArray;
  const event = {
    version: "2.0",
    routeKey: `${route.method} ${route.path}`,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: url.search ? Object.fromEntries(url.searchParams) : undefined,
    pathParameters: Object.fromEntries(
      route.names.map((n, i) => [n, decodeURIComponent(match[i + 1] ?? "")]),
    ),
    body: body.byteLength ? body.toString(binary ? "base64" : "utf8") : undefined,
    isBase64Encoded: binary && body.byteLength > 0,
    requestContext: { http: { method: route.method, path: url.pathname }, authorizer },
  } as unknown as HttpEvent;
  return route.run(event, lambdaContext(route.handler));
}

export async function startRouter(adminToken: string, port: number): Promise<Server> {
  // Handlers load only now, after the stack has set the environment their Powertools utilities read at import.
  const routes = await Promise.all(ROUTES.map(compile));
  const { authorize } = await import("../../functions/handlers/authorizer.ts");
  const server = createServer((request, response) => {
    dispatch(routes, authorize, request, adminToken)
      .catch((error: Error) => reply(500, "internal", error.message))
      .then((result) => {
        response.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>);
        response.end(result.body);
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new PortInUse(
              `port ${port} on 127.0.0.1 is in use; choose another --port, or leave it out for a free one`,
            )
          : error,
      ),
    );
    server.listen(port, "127.0.0.1", resolve);
  });
  return server;
}

/** The API's port is taken: without this, listen's error event crashed the process past the stack's cleanup. */
export class PortInUse extends Error {
  override name = "PortInUse";
}

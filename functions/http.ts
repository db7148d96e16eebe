// HTTP handlers: parse and validate input, call the round logic, answer JSON. Errors become {"error", "message"}.
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { type ZodTypeAny, z } from "zod";
import { PROTOCOL_HEADER, PROTOCOL_VERSION, protocolMismatch } from "../core/protocol.ts";
import { BadRequest, Forbidden, HttpError } from "./errors.ts";
import { logger, metrics, observed } from "./observability.ts";
import { type Services, services } from "./services.ts";

/** What the client authorizer puts in the request context (AWS: requestContext.authorizer.lambda). */
export interface ClientIdentity {
  runId: string;
  clientId: string;
}

export type HttpEvent = APIGatewayProxyEventV2 & {
  requestContext: APIGatewayProxyEventV2["requestContext"] & { authorizer?: { lambda?: ClientIdentity } };
};

export interface Reply {
  status: number;
  body: unknown;
}

export const json = (status: number, body: unknown): APIGatewayProxyStructuredResultV2 => ({
  statusCode: status,
  headers: { "content-type": "application/json", [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) },
  body: JSON.stringify(body),
});

/** Refuses a request that states another protocol version than this backend's, before any work. One that states
 * none (a script, curl) is served as this version. */
const protocolCheck: MiddlewareObj<HttpEvent, APIGatewayProxyStructuredResultV2> = {
  before: async (request) => {
    const stated = request.event.headers?.[PROTOCOL_HEADER];
    if (stated === undefined) return;
    if (!/^[0-9]{1,6}$/.test(stated)) {
      throw new BadRequest(
        "invalid_protocol",
        `${PROTOCOL_HEADER} must be a protocol version number (this backend speaks ${PROTOCOL_VERSION}), got ` +
          JSON.stringify(stated.slice(0, 40)),
      );
    }
    const version = Number(stated);
    if (version !== PROTOCOL_VERSION) {
      throw new BadRequest("protocol_mismatch", protocolMismatch(version, PROTOCOL_VERSION));
    }
  },
};

const errorReplies: MiddlewareObj<HttpEvent, APIGatewayProxyStructuredResultV2> = {
  onError: async (request) => {
    const error = request.error;
    if (error instanceof HttpError) {
      metrics.addMetric(`rejected_${error.code}`, MetricUnit.Count, 1);
      request.response = json(error.statusCode, { error: error.code, message: error.message });
      return;
    }
    logger.error("unhandled error", { error: error as Error });
    request.response = json(500, { error: "internal", message: "internal error; see the function's logs" });
  },
};

export function httpHandler(fn: (event: HttpEvent, svc: Services) => Promise<Reply>) {
  return observed(async (event: HttpEvent) => {
    const reply = await fn(event, services());
    return json(reply.status, reply.body);
  })
    .use(protocolCheck)
    .use(errorReplies);
}

/** Validates `value` against `schema`; a failure names each wrong field and what was expected. */
export function parse<S extends ZodTypeAny>(schema: S, value: unknown, what: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join(".") || what}: ${i.message}`).join("; ");
  throw new BadRequest(`invalid_${what}`, `invalid ${what}: ${problems}`);
}

export function jsonBody(event: HttpEvent): unknown {
  if (!event.body) return {};
  const text = event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest("invalid_json", "request body is not valid JSON");
  }
}

export const runIdParam = (event: HttpEvent) =>
  parse(z.string().regex(/^[A-Za-z0-9-]{1,64}$/), event.pathParameters?.runId, "runId");

export const numberParam = (value: string | undefined, what: string) =>
  parse(z.coerce.number().int().nonnegative(), value, what);

/** The authorizer's identity, which must belong to the run in the path. */
export function clientOf(event: HttpEvent): ClientIdentity {
  const identity = event.requestContext.authorizer?.lambda;
  const runId = runIdParam(event);
  if (!identity) throw new Forbidden("no_identity", "request carries no client identity");
  if (identity.runId !== runId) {
    throw new Forbidden("wrong_run", `this client token belongs to run ${identity.runId}, not ${runId}`);
  }
  return identity;
}

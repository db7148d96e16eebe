// HTTP API Lambda authorizer (payload 2.0, simple responses) for client bearer tokens. Only a SHA-256 of each token
// is stored, so the lookup is by hash; a revoked client is refused even though its token item remains.
import type { APIGatewayRequestAuthorizerEventV2 } from "aws-lambda";
import type { ClientIdentity } from "../http.ts";
import { observed } from "../observability.ts";
import { services } from "../services.ts";
import { hashToken } from "../tokens.ts";

export interface AuthorizerResult {
  isAuthorized: boolean;
  context?: ClientIdentity & Record<string, string>;
}

export async function authorize(authorization: string | undefined): Promise<AuthorizerResult> {
  const token = /^Bearer (\S+)$/.exec(authorization ?? "")?.[1];
  if (!token) return { isAuthorized: false };
  const client = await services().table.clientForToken(hashToken(token));
  if (!client || client.revoked) return { isAuthorized: false };
  return { isAuthorized: true, context: { runId: client.runId, clientId: client.clientId } };
}

export const handler = observed((event: APIGatewayRequestAuthorizerEventV2) =>
  authorize(event.headers?.authorization ?? event.headers?.Authorization),
);

// What a request to the API or to S3 can end in, typed so that callers (and the CLI's exit codes) tell a refusal
// from an outage, an outage from an outcome nobody knows, and either from a backend of another protocol version.
import { PROTOCOL_HEADER, PROTOCOL_VERSION, protocolMismatch } from "../../core/protocol.ts";

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

/** No connection could be made, or it failed or stalled before the reply was read whole: worth retrying later. */
export class UnreachableError extends Error {
  override name = "UnreachableError";
  /** No connection was ever made (refused, DNS, connect timeout): the server surely never saw the request. */
  readonly unsent: boolean;
  constructor(message: string, options?: ErrorOptions & { unsent?: boolean }) {
    super(message, options);
    this.unsent = options?.unsent ?? false;
  }
}

/** The backend's reply states another protocol version than this client's, or none (it predates versions). */
export class ProtocolMismatchError extends Error {
  override name = "ProtocolMismatchError";
}

/** A reply longer than the caller expected: read no further, since its length is chosen by whoever answers. */
export class OversizedReplyError extends Error {
  override name = "OversizedReplyError";
}

/**
 * A request that must not be repeated failed after it may have reached the server, so whether it took effect is
 * unknown. An UnreachableError, so that the CLI exits as for any outage.
 */
export class OutcomeUnknownError extends UnreachableError {
  override name = "OutcomeUnknownError";
}

/** Only a reply from the backend's handlers states the version, and only a success is surely theirs: API Gateway
 * answers an authorizer's refusal, a timeout or an unknown route itself. */
export function requireProtocol(response: Response, request: string, idempotent: boolean): void {
  const spoken = response.headers.get(PROTOCOL_HEADER);
  if (spoken === String(PROTOCOL_VERSION)) return;
  const what =
    spoken === null
      ? `the backend stated no protocol version (${PROTOCOL_HEADER}): it predates this CLI's protocol ` +
        `${PROTOCOL_VERSION}. Deploy the backend from the CLI's release (npx cdk deploy, or restart ferret local ` +
        "up), or use the CLI of the backend's release"
      : /^[0-9]+$/.test(spoken)
        ? protocolMismatch(PROTOCOL_VERSION, Number(spoken))
        : `the backend stated protocol ${JSON.stringify(spoken.slice(0, 40))}, not a version number; this CLI ` +
          `speaks ${PROTOCOL_VERSION}`;
  const effect = idempotent ? "" : "; the request may have taken effect";
  throw new ProtocolMismatchError(`${request}: ${what}${effect}`);
}

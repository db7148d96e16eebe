// The one list of HTTP routes. The CDK HTTP API and the local node:http router are both built from it, so a
// route added here exists in both places with the same auth.

/** "client": Lambda authorizer on a per-client bearer token. "operator": IAM (SigV4) in AWS, admin token locally. */
export type RouteAuth = "client" | "operator";

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** HTTP API style path template, e.g. "/runs/{runId}". */
  path: string;
  /** Entry file relative to functions/handlers/, exporting `handler`. */
  handler: string;
  auth: RouteAuth;
}

export const ROUTES: readonly Route[] = [
  // Operator
  { method: "POST", path: "/runs", handler: "create-run.ts", auth: "operator" },
  { method: "GET", path: "/runs/{runId}", handler: "run-status.ts", auth: "operator" },
  {
    method: "POST",
    path: "/runs/{runId}/checkpoint/uploads",
    handler: "checkpoint-upload.ts",
    auth: "operator",
  },
  {
    method: "POST",
    path: "/runs/{runId}/checkpoint/uploads/{uploadId}/parts",
    handler: "checkpoint-upload-parts.ts",
    auth: "operator",
  },
  {
    method: "POST",
    path: "/runs/{runId}/checkpoint/uploads/{uploadId}/complete",
    handler: "checkpoint-import.ts",
    auth: "operator",
  },
  { method: "POST", path: "/runs/{runId}/clients", handler: "register-client.ts", auth: "operator" },
  {
    method: "DELETE",
    path: "/runs/{runId}/clients/{clientId}",
    handler: "revoke-client.ts",
    auth: "operator",
  },
  { method: "POST", path: "/runs/{runId}/start", handler: "start-run.ts", auth: "operator" },
  { method: "POST", path: "/runs/{runId}/pause", handler: "pause-run.ts", auth: "operator" },
  {
    method: "POST",
    path: "/runs/{runId}/rounds/{round}/export",
    handler: "export-checkpoint.ts",
    auth: "operator",
  },
  // Client
  { method: "GET", path: "/runs/{runId}/assignment", handler: "assignment.ts", auth: "client" },
  {
    method: "POST",
    path: "/runs/{runId}/rounds/{round}/update-url",
    handler: "update-url.ts",
    auth: "client",
  },
  { method: "POST", path: "/runs/{runId}/rounds/{round}/uploads", handler: "upload.ts", auth: "client" },
  { method: "GET", path: "/runs/{runId}/log", handler: "update-log.ts", auth: "client" },
  {
    method: "GET",
    path: "/runs/{runId}/checkpoints/{checkpoint}",
    handler: "checkpoint-download.ts",
    auth: "client",
  },
];

/** Handlers that are not HTTP routes: the authorizer, the aggregation state machine's steps, the deadline target. */
export const STEP_HANDLERS = {
  authorizer: "authorizer.ts",
  aggregate: "aggregate.ts",
  reconstructShard: "reconstruct-shard.ts",
  commit: "commit.ts",
  fail: "fail.ts",
  deadline: "deadline.ts",
} as const;

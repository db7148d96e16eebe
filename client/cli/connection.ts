// Endpoint and credentials, from options or the environment (FERRET_ENDPOINT, FERRET_ADMIN_TOKEN, FERRET_TOKEN,
// FERRET_RUN), so scripts can export them once. `ferret local up` prints the exports for the local stack.
import { type Command, Option } from "commander";
import { Http } from "../api/http.ts";
import { OperatorApi } from "../api/routes.ts";
import { InputError, Output } from "./output.ts";

export const endpointOption = () =>
  new Option("--endpoint <url>", "Ferret API endpoint, e.g. http://127.0.0.1:4000").env("FERRET_ENDPOINT");

export const adminTokenOption = () =>
  new Option("--admin-token <token>", "operator token of the local stack (IAM in AWS)").env(
    "FERRET_ADMIN_TOKEN",
  );

export const runOption = () => new Option("--run <id>", "run id").env("FERRET_RUN");

export const jsonOption = () => new Option("--json", "machine-readable output on stdout");

export function required<T>(value: T | undefined, flag: string, env: string): T {
  if (value === undefined || value === "") throw new InputError(`${flag} is required (or set ${env})`);
  return value;
}

export interface OperatorFlags {
  endpoint?: string;
  adminToken?: string;
  json?: boolean;
}

export function operator(flags: OperatorFlags): { api: OperatorApi; out: Output } {
  const http = new Http(required(flags.endpoint, "--endpoint", "FERRET_ENDPOINT"));
  return {
    api: new OperatorApi(http, required(flags.adminToken, "--admin-token", "FERRET_ADMIN_TOKEN")),
    out: new Output(flags.json === true),
  };
}

/** Adds the options every operator command takes. */
export const withOperatorOptions = (command: Command) =>
  command.addOption(endpointOption()).addOption(adminTokenOption()).addOption(jsonOption());

// Endpoint and credentials, from options or the environment (FERRET_ENDPOINT, FERRET_ADMIN_TOKEN, FERRET_TOKEN,
// FERRET_RUN), so scripts can export them once. `ferret local up` prints the exports for the local stack.
import { type Command, Option } from "commander";
import { type BackoffOptions, DEFAULT_BACKOFF } from "../api/backoff.ts";
import { Http } from "../api/http.ts";
import { OperatorApi } from "../api/routes.ts";
import { httpUrl, seconds } from "./options.ts";
import { InputError, Output } from "./output.ts";

export const endpointOption = () =>
  new Option("--endpoint <url>", "Ferret API endpoint, e.g. http://127.0.0.1:4000")
    .env("FERRET_ENDPOINT")
    // An empty FERRET_ENDPOINT is no endpoint: the command then says it is missing.
    .argParser((value) => (value === "" ? undefined : httpUrl(value)));

export const adminTokenOption = () =>
  new Option(
    "--admin-token <token>",
    "operator token of the local stack; without it, requests are signed with AWS credentials (IAM)",
  ).env("FERRET_ADMIN_TOKEN");

export const regionOption = () =>
  new Option("--region <region>", "AWS region for IAM signing (default: from the endpoint)").env(
    "AWS_REGION",
  );

export const runOption = () => new Option("--run <id>", "run id").env("FERRET_RUN");

export const jsonOption = () => new Option("--json", "machine-readable output on stdout");

export function required<T>(value: T | undefined, flag: string, env: string): T {
  if (value === undefined || value === "") throw new InputError(`${flag} is required (or set ${env})`);
  return value;
}

export const giveUpOption = (fallback: number, shown: string) =>
  new Option("--give-up-after <duration>", "stop when the server stays unreachable this long")
    .argParser(seconds)
    .default(fallback, shown);

/** Backoff that announces each wait on stderr and gives up after `giveUpAfter` seconds. */
export const announcedBackoff = (out: Output, giveUpAfter: number): BackoffOptions => ({
  ...DEFAULT_BACKOFF,
  giveUpAfterMs: giveUpAfter * 1000,
  onWait: ({ delayMs, error }) =>
    out.info(`server unreachable or busy (${error.message}); retrying in ${(delayMs / 1000).toFixed(1)} s`),
});

export interface OperatorFlags {
  endpoint?: string;
  adminToken?: string;
  region?: string;
  giveUpAfter: number;
  json?: boolean;
}

/** The region of an API Gateway endpoint (https://ID.execute-api.REGION.amazonaws.com), if it is one. */
export function regionOf(endpoint: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(new URL(endpoint).hostname)?.[1];
}

/** The operator API with the admin token when one is given, else SigV4-signed with the AWS credential chain. */
export async function operator(flags: OperatorFlags): Promise<{ api: OperatorApi; out: Output }> {
  const endpoint = required(flags.endpoint, "--endpoint", "FERRET_ENDPOINT");
  const out = new Output(flags.json === true);
  const http = new Http(endpoint, announcedBackoff(out, flags.giveUpAfter));
  if (flags.adminToken) return { api: new OperatorApi(http, { adminToken: flags.adminToken }), out };
  const region = regionOf(endpoint) ?? flags.region;
  if (!region) {
    throw new InputError(
      "give --admin-token (local stack) or, for AWS, an execute-api endpoint or --region so requests can be signed",
    );
  }
  const { sigV4Signer } = await import("../api/sigv4.ts");
  return { api: new OperatorApi(http, { sign: sigV4Signer(region) }), out };
}

/** Adds the options every operator command takes. */
export const withOperatorOptions = (command: Command) =>
  command
    .addOption(endpointOption())
    .addOption(adminTokenOption())
    .addOption(regionOption())
    .addOption(giveUpOption(60, "1m"))
    .addOption(jsonOption());

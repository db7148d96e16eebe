// Every environment variable a handler reads, in one place, so the CDK stack and the local stack set the same ones.

export const ENVIRONMENT = {
  TABLE_NAME: "DynamoDB table (pk/sk single-table design) holding runs, clients, rounds, uploads, update log",
  BUCKET_NAME:
    "S3 bucket holding checkpoints under runs/{run}/rounds/{r}/ and exports under runs/{run}/exports/",
  STATE_MACHINE_ARN:
    "Aggregation state machine (aggregate -> map reconstruct-shard -> commit). Unset locally.",
  DEADLINE_FUNCTION_ARN:
    "deadline.ts Lambda, the EventBridge Scheduler target for round deadlines. Unset locally.",
  SCHEDULER_ROLE_ARN: "Role EventBridge Scheduler assumes to invoke DEADLINE_FUNCTION_ARN. Unset locally.",
  SCHEDULER_GROUP_NAME: "Optional EventBridge Scheduler group for deadline schedules (default: 'default').",
  SHARD_PARAMS: "Optional target parameters per checkpoint shard (default 4194304 = 16 MiB of float32).",
  AWS_ENDPOINT_URL: "Optional endpoint override for DynamoDB and S3 (LocalStack).",
  AWS_ENDPOINT_URL_DYNAMODB: "Optional DynamoDB endpoint; wins over AWS_ENDPOINT_URL (local stack).",
  AWS_ENDPOINT_URL_S3: "Optional S3 endpoint (path-style); wins over AWS_ENDPOINT_URL (local stack).",
  POWERTOOLS_SERVICE_NAME: "Powertools service name for logs, metrics and traces (e.g. 'ferret').",
  POWERTOOLS_METRICS_NAMESPACE: "Powertools metrics namespace (e.g. 'Ferret').",
} as const;

export type EnvironmentName = keyof typeof ENVIRONMENT;

export class ConfigurationError extends Error {
  override name = "ConfigurationError";
}

export function requireEnv(name: EnvironmentName): string {
  const value = process.env[name];
  if (!value) throw new ConfigurationError(`environment variable ${name} is not set: ${ENVIRONMENT[name]}`);
  return value;
}

export function optionalEnv(name: EnvironmentName): string | undefined {
  return process.env[name] || undefined;
}

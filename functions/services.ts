// What handlers depend on, built once per Lambda container (or once per local-stack process) from ENVIRONMENT.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { optionalEnv, requireEnv } from "./env.ts";
import { awsPlatform } from "./platform.ts";
import { CheckpointBucket } from "./storage/objects.ts";
import { RoundTable } from "./storage/table.ts";

/** The two things the cloud does for the backend that a local process must do itself. */
export interface Platform {
  /** Runs aggregate -> reconstruct-shard (per shard) -> commit for a round that just closed. */
  startAggregation(runId: string, round: number): Promise<void>;
  /** Calls the deadline handler for this round at `deadline` (epoch ms). */
  scheduleDeadline(runId: string, round: number, deadline: number): Promise<void>;
}

export interface Services {
  table: RoundTable;
  bucket: CheckpointBucket;
  platform: Platform;
  shardParams: number;
  now: () => number;
}

const DEFAULT_SHARD_PARAMS = 4 * 1024 * 1024;

let current: Services | undefined;

export function services(): Services {
  current ??= servicesFromEnvironment();
  return current;
}

/** The local stack and tests install their own platform (worker-thread orchestrator, timers). */
export function useServices(replacement: Services | undefined): void {
  current = replacement;
}

export function servicesFromEnvironment(platform?: Platform): Services {
  const dynamoEndpoint = optionalEnv("AWS_ENDPOINT_URL_DYNAMODB") ?? optionalEnv("AWS_ENDPOINT_URL");
  const s3Endpoint = optionalEnv("AWS_ENDPOINT_URL_S3") ?? optionalEnv("AWS_ENDPOINT_URL");
  const shardParams = Number(optionalEnv("SHARD_PARAMS") ?? DEFAULT_SHARD_PARAMS);
  if (!Number.isInteger(shardParams) || shardParams <= 0) {
    throw new Error(`SHARD_PARAMS must be a positive integer, got ${optionalEnv("SHARD_PARAMS")}`);
  }
  return {
    table: new RoundTable(new DynamoDBClient({ endpoint: dynamoEndpoint }), requireEnv("TABLE_NAME")),
    bucket: new CheckpointBucket(
      // Shard integrity is our own SHA-256 per block; the SDK's default CRC32 on every 16 MB body would hash
      // each shard a second time in JavaScript, so checksums are computed only where S3 requires them.
      new S3Client({
        endpoint: s3Endpoint,
        forcePathStyle: Boolean(s3Endpoint),
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      }),
      requireEnv("BUCKET_NAME"),
    ),
    platform: platform ?? awsPlatform(),
    shardParams,
    now: Date.now,
  };
}

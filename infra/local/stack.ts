// The whole backend on one machine: emulators (or FERRET_AWS_ENDPOINT, e.g. LocalStack), the handlers behind the
// router, the aggregation in worker threads. Used by `npm run local` and by the integration tests.
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { availableParallelism } from "node:os";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { type Services, servicesFromEnvironment, useServices } from "../../functions/services.ts";
import { createTable, type Emulators, freePort, startEmulators } from "./emulators.ts";
import { LocalOrchestrator, type OrchestratorOptions } from "./orchestrator.ts";
import { startRouter } from "./router.ts";
import { ShardPool } from "./shard-pool.ts";

export interface LocalStackOptions {
  port?: number;
  threads?: number;
  shardParams?: number;
  orchestrator?: Partial<OrchestratorOptions>;
}

export interface LocalStack {
  endpoint: string;
  adminToken: string;
  services: Services;
  orchestrator: LocalOrchestrator;
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const suffix = randomBytes(4).toString("hex");
  const external = process.env.FERRET_AWS_ENDPOINT;
  const emulators: Emulators | undefined = external ? undefined : await startEmulators(`ferret-${suffix}`);
  const env: Record<string, string> = {
    TABLE_NAME: `ferret-${suffix}`,
    BUCKET_NAME: `ferret-${suffix}`,
    AWS_ENDPOINT_URL_DYNAMODB: external ?? emulators?.endpoint.dynamodb ?? "",
    AWS_ENDPOINT_URL_S3: external ?? emulators?.endpoint.s3 ?? "",
    AWS_REGION: process.env.AWS_REGION ?? "us-east-1",
    // s3rver checks signatures against these; DynamoDB Local and LocalStack accept anything.
    AWS_ACCESS_KEY_ID: external ? (process.env.AWS_ACCESS_KEY_ID ?? "test") : "S3RVER",
    AWS_SECRET_ACCESS_KEY: external ? (process.env.AWS_SECRET_ACCESS_KEY ?? "test") : "S3RVER",
    SHARD_PARAMS: String(options.shardParams ?? 4 * 1024 * 1024),
    POWERTOOLS_SERVICE_NAME: "ferret",
    POWERTOOLS_METRICS_DISABLED: "true",
    POWERTOOLS_TRACE_ENABLED: "false",
    POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? "ERROR",
  };
  Object.assign(process.env, env);
  const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism()));
  // The AWS SDK warns once per thread on Node 20 that its 2027 releases need Node 22: the stack's own warning is
  // enough, not one more per shard worker.
  const pool = new ShardPool(threads, {
    ...(process.env as Record<string, string>),
    ...env,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });
  const orchestrator = new LocalOrchestrator(pool, { attempts: 3, ...options.orchestrator });
  const services = servicesFromEnvironment(orchestrator);
  orchestrator.svc = services;
  useServices(services);
  let server: Server | undefined;
  try {
    await createTable(
      new DynamoDBClient({ endpoint: env.AWS_ENDPOINT_URL_DYNAMODB }),
      env.TABLE_NAME as string,
    );
    if (external) {
      const s3 = new S3Client({ endpoint: external, forcePathStyle: true });
      await s3.send(new CreateBucketCommand({ Bucket: env.BUCKET_NAME }));
    }
    const adminToken = `admin_${randomBytes(24).toString("base64url")}`;
    const port = options.port ?? (await freePort());
    server = await startRouter(adminToken, port);
    const running = server;
    return {
      endpoint: `http://127.0.0.1:${port}`,
      adminToken,
      services,
      orchestrator,
      env,
      async close() {
        orchestrator.close();
        await orchestrator.idle();
        await new Promise((resolve) => running.close(resolve));
        await pool.close();
        useServices(undefined);
        await emulators?.stop();
      },
    };
  } catch (error) {
    server?.close();
    await pool.close();
    await emulators?.stop();
    throw error;
  }
}

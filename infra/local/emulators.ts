// DynamoDB Local (see dynamodb-local.ts) and s3rver, on free loopback ports.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import S3rver from "s3rver";
import { type DynamoDbLocal, spawnDynamoDbLocal } from "./dynamodb-local.ts";

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

async function waitFor(what: string, ready: () => Promise<unknown>, server?: DynamoDbLocal): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 150; attempt++) {
    const exitCode = server?.process.exitCode;
    if (exitCode !== undefined && exitCode !== null) {
      throw new Error(`${what} exited with code ${exitCode}: ${server?.stderrTail() || "it wrote nothing"}`);
    }
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
  const dynamoPort = await freePort();
  const dynamo = spawnDynamoDbLocal(dynamoPort);
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
    await dynamo.stop();
    await s3rver.close();
    throw error;
  }
  return {
    endpoint: { dynamodb, s3: `http://127.0.0.1:${s3Port}` },
    async stop() {
      await dynamo.stop();
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

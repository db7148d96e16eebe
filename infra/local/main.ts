// `npm run local`: start the local stack and keep it up until Ctrl-C.
import { JavaMissing } from "./dynamodb-local.ts";
import { startLocalStack } from "./stack.ts";
import { stopSignal } from "./stop-signal.ts";

try {
  const port = process.env.PORT ? Number(process.env.PORT) : undefined;
  const stack = await startLocalStack(port ? { port } : {});
  console.log(`Ferret local stack ready
  endpoint:    ${stack.endpoint}
  admin token: ${stack.adminToken}
  table:       ${stack.env.TABLE_NAME} at ${stack.env.AWS_ENDPOINT_URL_DYNAMODB}
  bucket:      ${stack.env.BUCKET_NAME} at ${stack.env.AWS_ENDPOINT_URL_S3}
Operator routes take "Authorization: Bearer <admin token>". Ctrl-C stops it.`);
  await stopSignal((signal) => console.log(`${signal}: still stopping…`));
  console.log("stopping…");
  await stack.close();
  process.exit(0);
} catch (error) {
  // As the ferret command does: a missing or unusable Java is a local input (3), anything else a bug (1).
  console.error(error instanceof JavaMissing ? error.message : error);
  process.exit(error instanceof JavaMissing ? 3 : 1);
}

import { ArnFormat, Duration, Stack } from "aws-cdk-lib";
import type { Table } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Bucket } from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import type { EnvironmentName } from "../../functions/env.ts";
import { ROUTES, STEP_HANDLERS } from "../../functions/routes.ts";
import { STAGING_PREFIX } from "../../functions/storage/objects.ts";
import type { Deadlines } from "./aggregation.ts";
import { FerretFunction } from "./functions.ts";
import { acknowledgeWildcard } from "./nag.ts";

type Access = "read" | "write";

/** What one handler may touch. Anything not listed here is denied: least privilege, reviewed in one table. */
interface HandlerAccess {
  description: string;
  table?: Access;
  bucket?: Access;
  /** Starts the aggregation state machine (quorum reached, deadline passed). */
  startsAggregation?: true;
  /** fedavg: presigns PUTs to clients' staging keys, so its role may put objects there and nowhere else. */
  presignsStaging?: true;
  /** fedavg: reads a client's staged update (its length, values and hash) when the client commits it. */
  readsStaging?: true;
  /** Opens rounds, so creates their deadline schedules. */
  schedulesDeadlines?: true;
  memorySize?: number;
  timeout?: Duration;
}

// Handlers behind the HTTP API must answer within API Gateway's 30 s. Import and export are the exception: for a
// large model they take minutes, and both are idempotent, so they may outlive the HTTP response — the operator
// polls run status (import) or asks again (export) and gets the finished result. Aggregation steps run under
// Step Functions and get what one shard needs (SHARD_PARAMS float32 in, the same out).
const LONG = Duration.minutes(15);

// 64 Mi float32 = 256 MiB per shard at most. A larger block is cut across shards (manifest.ts), and the commit
// step reads a cut block back to hash it: at 32 Mi, Llama-3-8B's 58.7M-parameter MLP matrices were cut too, 27 GB
// to read back every round; at 64 Mi only its embedding and head are, 4.2 GB. Step Functions passes the shard list
// and the shard results inline, within its 256 KiB payload: Llama-3-8B is 144 shards, well inside; the local
// stack's 16 MiB default would make it ~1,900, which is not.
const SHARD_PARAMS = 64 * 1024 * 1024;
const HANDLERS: Record<string, HandlerAccess> = {
  "create-run.ts": { description: "Operator: create a run", table: "write" },
  "run-status.ts": { description: "Operator: run and round status", table: "read" },
  "checkpoint-upload.ts": {
    description: "Operator: presigned multipart upload of the initial checkpoint",
    table: "read",
    bucket: "write",
  },
  "checkpoint-upload-parts.ts": {
    description: "Operator: presigned URLs for more parts of the initial checkpoint's upload",
    table: "read",
    bucket: "write",
  },
  "checkpoint-import.ts": {
    description: "Operator: complete the upload and import it as checkpoint 0",
    table: "write",
    bucket: "write",
    // Four 256 MiB shards in flight, each with the stored copy it is checked against on a repeated import.
    memorySize: 3008,
    timeout: LONG,
  },
  "register-client.ts": {
    description: "Operator: register a client and show its token once",
    table: "write",
  },
  "revoke-client.ts": { description: "Operator: revoke a client", table: "write" },
  "start-run.ts": {
    description: "Operator: start or resume a run",
    table: "write",
    // Resuming finishes what a crash left: a round's deadline, or an aggregation that never started.
    startsAggregation: true,
    schedulesDeadlines: true,
  },
  "pause-run.ts": { description: "Operator: pause a run", table: "write" },
  "export-checkpoint.ts": {
    description: "Operator: export a checkpoint as one safetensors file",
    // It claims the export in the table, so that repeats while it runs do not start another copy.
    table: "write",
    bucket: "write",
    memorySize: 1024,
    timeout: LONG,
  },
  "assignment.ts": { description: "Client: current round, seed, plan and selection", table: "read" },
  "update-url.ts": {
    description: "Client (fedavg): presigned PUT of a full update to its staging key",
    table: "read",
    presignsStaging: true,
  },
  "upload.ts": {
    description: "Client: upload coefficients or seed pairs, or commit a staged fedavg update",
    table: "write",
    // fedavg commits read the staging object and write the committed update once.
    bucket: "write",
    readsStaging: true,
    startsAggregation: true,
  },
  "update-log.ts": { description: "Client: update-log entries for a range of rounds", table: "read" },
  "checkpoint-download.ts": {
    description: "Client: presigned download of a checkpoint's manifest and shards",
    table: "read",
    bucket: "read",
  },
  [STEP_HANDLERS.authorizer]: { description: "Client bearer-token authorizer", table: "read" },
  [STEP_HANDLERS.aggregate]: {
    description: "Aggregation: aggregate uploads, write the update-log entry, list shards",
    table: "write",
    bucket: "read",
    memorySize: 1024,
    timeout: Duration.minutes(5),
  },
  [STEP_HANDLERS.reconstructShard]: {
    description: "Aggregation: rebuild one checkpoint shard",
    table: "read",
    bucket: "write",
    memorySize: 1769,
    timeout: LONG,
  },
  [STEP_HANDLERS.commit]: {
    description: "Aggregation: write the manifest, commit the round, open the next one",
    table: "write",
    bucket: "write",
    schedulesDeadlines: true,
    // It reads each block cut across shards back for its SHA-256: 4.2 GB for an 8B model's embedding and head,
    // over one S3 connection each; the memory buys the CPU share that hashing needs.
    memorySize: 1024,
    timeout: LONG,
  },
  [STEP_HANDLERS.fail]: {
    description: "Aggregation: record a round FAILED, open the next one",
    table: "write",
    schedulesDeadlines: true,
  },
  [STEP_HANDLERS.deadline]: {
    description: "Round deadline: aggregate with the minimum uploads, else fail and open the next round",
    table: "write",
    startsAggregation: true,
    schedulesDeadlines: true,
  },
};

// TransactWriteItems and conditional writes are authorized per item as PutItem/UpdateItem/ConditionCheckItem;
// no handler deletes an item (revocation and state changes are updates), so no DeleteItem anywhere.
const TABLE_READ = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"];
const TABLE_ACTIONS: Record<Access, string[]> = {
  read: TABLE_READ,
  write: [...TABLE_READ, "dynamodb:PutItem", "dynamodb:UpdateItem"],
};

export interface HandlersProps {
  table: Table;
  bucket: Bucket;
  deadlines: Deadlines;
  /** Known before the state machine exists: it runs these handlers, and some of them start it. */
  stateMachineArn: string;
  /** Its executions: a handler that starts one for a round asks how an earlier one for that round ended. */
  executionsArn: string;
}

/** One FerretFunction per handler file, each with the environment and the grants its row above allows. */
export class Handlers extends Construct {
  readonly byFile = new Map<string, FerretFunction>();

  constructor(scope: Construct, id: string, props: HandlersProps) {
    super(scope, id);
    const files = [...new Set([...ROUTES.map((route) => route.handler), ...Object.values(STEP_HANDLERS)])];
    const unknown = files.filter((file) => !HANDLERS[file]);
    if (unknown.length > 0) {
      throw new Error(
        `infra/cdk/handlers.ts has no access row for ${unknown.join(", ")}: add one saying what each may touch`,
      );
    }
    // The deadline handler re-arms deadlines (it opens the next round when one fails), so it needs its own ARN:
    // a fixed name makes that ARN a plain string instead of a reference of the function to itself.
    const deadlineName = `${Stack.of(this).stackName}-round-deadline`;
    const deadlineArn = Stack.of(this).formatArn({
      service: "lambda",
      resource: "function",
      resourceName: deadlineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    for (const file of files) {
      const functionName = file === STEP_HANDLERS.deadline ? deadlineName : undefined;
      const access = HANDLERS[file] as HandlerAccess;
      this.byFile.set(file, this.create(file, access, { ...props, deadlineArn, functionName }));
    }
    props.deadlines.target(this.get(STEP_HANDLERS.deadline));
  }

  get(file: string): FerretFunction {
    const fn = this.byFile.get(file);
    if (!fn) throw new Error(`no handler ${file} in functions/routes.ts`);
    return fn;
  }

  private create(
    file: string,
    access: HandlerAccess,
    props: HandlersProps & { deadlineArn: string; functionName?: string },
  ): FerretFunction {
    // Every handler builds the same services (table and bucket clients) at start-up, so every handler gets both
    // names; what it may do with them is decided by the grants below, not by hiding a name.
    const environment: Partial<Record<EnvironmentName, string>> = {
      TABLE_NAME: props.table.tableName,
      BUCKET_NAME: props.bucket.bucketName,
      SHARD_PARAMS: String(SHARD_PARAMS),
    };
    if (access.startsAggregation) environment.STATE_MACHINE_ARN = props.stateMachineArn;
    if (access.schedulesDeadlines) {
      environment.SCHEDULER_GROUP_NAME = props.deadlines.group.scheduleGroupName;
      environment.SCHEDULER_ROLE_ARN = props.deadlines.schedulerRole.roleArn;
      environment.DEADLINE_FUNCTION_ARN = props.deadlineArn;
    }
    const fn = new FerretFunction(this, constructId(file), {
      entry: file,
      functionName: props.functionName,
      description: `Ferret ${access.description}`,
      environment: environment as Record<string, string>,
      memorySize: access.memorySize,
      timeout: access.timeout,
    });

    if (access.table) props.table.grant(fn.executionRole, ...TABLE_ACTIONS[access.table]);
    if (access.bucket) grantObjects(fn, props.bucket, access.bucket);
    if (access.presignsStaging) grantStaging(fn, props.bucket, "s3:PutObject");
    if (access.readsStaging) grantStaging(fn, props.bucket, "s3:GetObject");
    if (access.startsAggregation) {
      fn.addToRolePolicy(
        new PolicyStatement({ actions: ["states:StartExecution"], resources: [props.stateMachineArn] }),
      );
      fn.addToRolePolicy(
        new PolicyStatement({ actions: ["states:DescribeExecution"], resources: [props.executionsArn] }),
      );
      acknowledgeWildcard(
        fn.executionRole,
        props.executionsArn,
        "Executions are named per run and round at run time; only this state machine's are covered.",
      );
    }
    if (access.schedulesDeadlines) props.deadlines.grantScheduling(fn.executionRole);
    return fn;
  }
}

// Objects live under runs/{run}/…, named at run time, hence the one wildcard. Writers read too: they check that a
// key is absent before writing it, and S3 answers HEAD on a missing key with 404 (not 403) only to callers that
// may list the bucket. Never s3:DeleteObject: nothing is overwritten or removed.
function grantObjects(fn: FerretFunction, bucket: Bucket, access: Access): void {
  const objects = bucket.arnForObjects("runs/*");
  fn.addToRolePolicy(new PolicyStatement({ actions: ["s3:ListBucket"], resources: [bucket.bucketArn] }));
  fn.addToRolePolicy(
    new PolicyStatement({
      // Multipart uploads (checkpoint import, export) are PutObject per part; Abort cleans up a failed export.
      actions:
        access === "write" ? ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"] : ["s3:GetObject"],
      resources: [objects],
    }),
  );
  acknowledgeWildcard(
    fn.executionRole,
    objects,
    "Checkpoint, update-log and export keys are created per run and round at run time, all under runs/.",
  );
}

// Clients' fedavg updates, under staging/runs/{run}/rounds/{round}/{client}.f32. update-url's role signs clients'
// URLs, so a URL may do what the role may: PutObject there, nothing else (not even read them back). upload's
// role reads a staged update when its client commits it (HEAD, then the bytes).
function grantStaging(fn: FerretFunction, bucket: Bucket, action: "s3:PutObject" | "s3:GetObject"): void {
  const staging = bucket.arnForObjects(`${STAGING_PREFIX}*`);
  fn.addToRolePolicy(new PolicyStatement({ actions: [action], resources: [staging] }));
  acknowledgeWildcard(
    fn.executionRole,
    staging,
    "fedavg clients PUT their update to staging/runs/{run}/rounds/{round}/{client}.f32, named at run time.",
  );
}

/** "reconstruct-shard.ts" → "ReconstructShard": stable construct ids, so logical ids survive reordering. */
export function constructId(file: string): string {
  return file.replace(/\.ts$/, "").replace(/(^|-)(\w)/g, (_, _dash: string, c: string) => c.toUpperCase());
}

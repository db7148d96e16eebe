import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import type { Construct } from "constructs";
import { ROUTES, STEP_HANDLERS } from "../../functions/routes.ts";
import { Aggregation, Deadlines } from "./aggregation.ts";
import { Api } from "./api.ts";
import { Handlers } from "./handlers.ts";
import { Monitoring } from "./monitoring.ts";
import { Storage } from "./storage.ts";

export interface FerretStackProps extends StackProps {
  /** DynamoDB deletion protection on the table (default true). */
  deletionProtection?: boolean;
  /** An address subscribed to the alarm topic. */
  alarmEmail?: string;
  /** Shard tasks of one round running at once (default 100). */
  maxShardConcurrency?: number;
}

/** The whole Ferret backend in one account and region: storage, handlers, HTTP API, aggregation, alarms. */
export class FerretStack extends Stack {
  constructor(scope: Construct, id: string, props: FerretStackProps = {}) {
    super(scope, id, props);

    const storage = new Storage(this, "Storage", { deletionProtection: props.deletionProtection ?? true });
    const deadlines = new Deadlines(this, "Deadlines");

    // The state machine is named, so its ARN is known before it exists: the handlers that start it are created
    // first, then the state machine that runs the step handlers among them.
    const stateMachineName = `${this.stackName}-aggregation`;
    const handlers = new Handlers(this, "Handlers", {
      table: storage.table,
      bucket: storage.bucket,
      deadlines,
      stateMachineArn: Aggregation.arnFor(this, stateMachineName),
      executionsArn: Aggregation.executionsArnFor(this, stateMachineName),
    });
    const aggregation = new Aggregation(this, "Aggregation", {
      stateMachineName,
      maxConcurrency: props.maxShardConcurrency ?? 100,
      handlers: {
        aggregate: handlers.get(STEP_HANDLERS.aggregate),
        reconstructShard: handlers.get(STEP_HANDLERS.reconstructShard),
        commit: handlers.get(STEP_HANDLERS.commit),
        fail: handlers.get(STEP_HANDLERS.fail),
      },
    });
    const api = new Api(this, "Api", {
      routes: ROUTES,
      functionFor: (file) => handlers.get(file),
      authorizer: handlers.get(STEP_HANDLERS.authorizer),
    });
    const monitoring = new Monitoring(this, "Monitoring", {
      stateMachine: aggregation.stateMachine,
      functions: new Map([...handlers.byFile].map(([file, fn]) => [file.replace(/\.ts$/, ""), fn])),
      deadlines: deadlines.group,
      lostDeadlines: deadlines.lost,
      alarmEmail: props.alarmEmail,
    });

    new CfnOutput(this, "ApiUrl", {
      value: api.url,
      description: "Base URL for the ferret CLI (FERRET_API)",
    });
    new CfnOutput(this, "TableName", { value: storage.table.tableName });
    new CfnOutput(this, "BucketName", { value: storage.bucket.bucketName });
    new CfnOutput(this, "StateMachineArn", { value: aggregation.stateMachine.stateMachineArn });
    new CfnOutput(this, "AlarmTopicArn", { value: monitoring.topic.topicArn });
  }
}

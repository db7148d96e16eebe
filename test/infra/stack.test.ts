// Template assertions on the Ferret stack: each resource an operator deploys, with the properties they rely on.
import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ROUTES, STEP_HANDLERS } from "../../functions/routes.ts";
import {
  environmentOf,
  functionId as findFunctionId,
  flatten,
  functionOf,
  only,
  type Resource,
  statementsOf,
  synthesize,
} from "./synth.ts";

let template: Template;
let nagFindings: string[];
const handlerFiles = [...new Set([...ROUTES.map((r) => r.handler), ...Object.values(STEP_HANDLERS)])];

beforeAll(() => {
  ({ template, nagFindings } = synthesize());
});

it("passes cdk-nag's AwsSolutions checks, each exception acknowledged with its reason", () => {
  expect(nagFindings).toEqual([]);
});

const resources = (type: string) => Object.entries(template.findResources(type) as Record<string, Resource>);
const functionId = (file: string) => findFunctionId(template, file);
const actionsOf = (file: string) => statementsOf(template, file).flatMap((s) => [s.Action].flat());
/** Actions beyond writing the function's own logs and traces. */
const dataActionsOf = (file: string) => actionsOf(file).filter((a) => !/^(logs|xray):/.test(a));

describe("Lambda handlers", () => {
  it("bundles one arm64 Node.js 24 ESM function per handler file, traced, with Powertools settings", () => {
    expect(resources("AWS::Lambda::Function")).toHaveLength(handlerFiles.length);
    for (const file of handlerFiles) {
      expect(functionOf(template, file).Properties, file).toMatchObject({
        Runtime: "nodejs24.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        TracingConfig: { Mode: "Active" },
        Environment: {
          Variables: {
            POWERTOOLS_SERVICE_NAME: "ferret",
            POWERTOOLS_METRICS_NAMESPACE: "Ferret",
            NODE_OPTIONS: "--enable-source-maps",
            TABLE_NAME: { Ref: expect.stringMatching(/^StorageTable/) },
            BUCKET_NAME: { Ref: expect.stringMatching(/^StorageCheckpoints/) },
          },
        },
      });
    }
  });

  it("gives API handlers under API Gateway's 30 s and the shard task Lambda's 15 minutes", () => {
    const timeoutOf = (file: string) => functionOf(template, file).Properties.Timeout;
    expect(timeoutOf("upload.ts")).toBeLessThan(30);
    expect(timeoutOf(STEP_HANDLERS.authorizer)).toBeLessThan(30);
    expect(timeoutOf(STEP_HANDLERS.reconstructShard)).toBe(900);
  });

  it("never lets any handler delete an item or an object", () => {
    for (const file of handlerFiles) {
      const actions = actionsOf(file);
      expect(
        actions.filter((a) => /Delete|\*/.test(a)),
        file,
      ).toEqual([]);
    }
  });

  it("keeps read-only handlers read-only", () => {
    const reads = ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:Query"];
    for (const file of ["run-status.ts", "assignment.ts", "update-log.ts", STEP_HANDLERS.authorizer]) {
      expect(dataActionsOf(file).sort(), file).toEqual(reads);
    }
    expect(dataActionsOf("checkpoint-download.ts").sort()).toEqual([
      ...reads,
      "s3:GetObject",
      "s3:ListBucket",
    ]);
  });

  it("lets update-url presign PUTs to fedavg staging keys only, and nothing else in the bucket", () => {
    const reads = ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:Query"];
    expect(dataActionsOf("update-url.ts").sort()).toEqual([...reads, "s3:PutObject"]);
    const [put] = statementsOf(template, "update-url.ts").filter((s) => s.Action === "s3:PutObject");
    expect(flatten(put?.Resource)).toMatch(/^<StorageCheckpoints\w+\.Arn>\/staging\/\*$/);
  });

  it("lets upload read fedavg staging keys, which a commit checks, and write none of them", () => {
    const staging = statementsOf(template, "upload.ts").filter((s) =>
      /\/staging\/\*$/.test(flatten(s.Resource) as string),
    );
    expect(staging.map((s) => s.Action)).toEqual(["s3:GetObject"]);
  });

  it("lets exactly the upload, deadline and start handlers start the state machine it names", () => {
    const [[stateMachineId, stateMachine]] = resources("AWS::StepFunctions::StateMachine") as [
      [string, Resource],
    ];
    const name = stateMachine.Properties.StateMachineName as string;
    const arn = `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:${name}`;
    expect(stateMachineId).toMatch(/^AggregationStateMachine/);
    for (const file of handlerFiles) {
      const starts = statementsOf(template, file).filter((s) =>
        [s.Action].flat().includes("states:StartExecution"),
      );
      // A repair asks how the round's earlier execution ended before it starts another.
      const describes = statementsOf(template, file).filter((s) =>
        [s.Action].flat().includes("states:DescribeExecution"),
      );
      if (file === "upload.ts" || file === STEP_HANDLERS.deadline || file === "start-run.ts") {
        expect(
          starts.map((s) => flatten(s.Resource)),
          file,
        ).toEqual([arn]);
        expect(describes.map((s) => flatten(s.Resource))).toEqual([
          `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${name}:*`,
        ]);
        expect(flatten(environmentOf(template, file).STATE_MACHINE_ARN)).toBe(arn);
      } else {
        expect(starts, file).toEqual([]);
        expect(describes, file).toEqual([]);
      }
    }
  });
});

describe("HTTP API", () => {
  it("has every route of functions/routes.ts, client routes behind the token authorizer, operator routes behind IAM", () => {
    const routes = resources("AWS::ApiGatewayV2::Route").map(([, r]) => r.Properties);
    expect(routes).toHaveLength(ROUTES.length);
    const [authorizerId] = only(template, "AWS::ApiGatewayV2::Authorizer");
    for (const route of ROUTES) {
      const found = routes.find((r) => r.RouteKey === `${route.method} ${route.path}`);
      expect(found, `${route.method} ${route.path}`).toBeDefined();
      if (route.auth === "operator") {
        expect(found?.AuthorizationType).toBe("AWS_IAM");
      } else {
        expect(found?.AuthorizationType).toBe("CUSTOM");
        expect(found?.AuthorizerId).toEqual({ Ref: authorizerId });
      }
    }
  });

  it("sends each route to the function of its handler file", () => {
    const integrations = Object.fromEntries(resources("AWS::ApiGatewayV2::Integration"));
    for (const [, route] of resources("AWS::ApiGatewayV2::Route")) {
      const spec = ROUTES.find((r) => route.Properties.RouteKey === `${r.method} ${r.path}`);
      const target = flatten(route.Properties.Target).replace(/^integrations\/<(.*)>$/, "$1");
      const uri = integrations[target]?.Properties.IntegrationUri as { "Fn::GetAtt": string[] };
      expect(uri["Fn::GetAtt"][0], String(route.Properties.RouteKey)).toBe(functionId(spec?.handler ?? ""));
    }
  });

  it("authorizes client tokens with a simple-response Lambda authorizer that caches nothing", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Authorizer", {
      AuthorizerType: "REQUEST",
      AuthorizerPayloadFormatVersion: "2.0",
      EnableSimpleResponses: true,
      IdentitySource: ["$request.header.Authorization"],
      AuthorizerResultTtlInSeconds: 0,
      AuthorizerUri: Match.objectLike({
        "Fn::Join": Match.arrayWith([
          Match.arrayWith([{ "Fn::GetAtt": [functionId("authorizer.ts"), "Arn"] }]),
        ]),
      }),
    });
  });

  it("deploys the $default stage automatically, with access logs and throttling", () => {
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp("requestId") },
      DefaultRouteSettings: { ThrottlingRateLimit: 500, ThrottlingBurstLimit: 1000 },
    });
  });
});

describe("storage", () => {
  it("keeps runs and rounds in one on-demand pk/sk table with point-in-time recovery, retained", () => {
    template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      Properties: {
        KeySchema: [
          { AttributeName: "pk", KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "sk", AttributeType: "S" },
        ],
        BillingMode: "PAY_PER_REQUEST",
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      },
    });
  });

  it("keeps checkpoints in an encrypted, private, versioned, logged bucket that aborts stale multipart uploads", () => {
    template.hasResource("AWS::S3::Bucket", {
      DeletionPolicy: "Retain",
      Properties: Match.objectLike({
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: "Enabled" },
        LoggingConfiguration: {
          DestinationBucketName: { Ref: Match.stringLikeRegexp("^StorageAccessLogs") },
        },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 },
              Status: "Enabled",
            }),
            Match.objectLike({ Prefix: "staging/", ExpirationInDays: 8, Status: "Enabled" }),
            Match.objectLike({ NoncurrentVersionExpiration: { NoncurrentDays: 30 } }),
          ]),
        },
      }),
    });
  });

  it("refuses plain HTTP and TLS below 1.2 on the checkpoint bucket", () => {
    const [bucketId] = only(template, "AWS::S3::Bucket", {
      Properties: { VersioningConfiguration: Match.anyValue() },
    });
    template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: bucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
          Match.objectLike({ Effect: "Deny", Condition: { NumericLessThan: { "s3:TlsVersion": 1.2 } } }),
        ]),
      },
    });
  });

  it("can turn the table's deletion protection off for a throwaway stack", () => {
    const throwaway = synthesize({ deletionProtection: false }).template;
    throwaway.hasResourceProperties("AWS::DynamoDB::Table", { DeletionProtectionEnabled: false });
  });
});

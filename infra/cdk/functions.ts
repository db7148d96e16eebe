import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime, Tracing } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { acknowledgeTracing } from "./nag.ts";

/** The repository root: esbuild resolves handlers and node_modules from here, never from the CDK's cwd. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** The WebAssembly kernels core/ loads at run time, as `npm run build:wasm` writes them. */
const KERNELS = "build/kernels.wasm";

export interface FerretFunctionProps {
  /** Handler file name under functions/handlers/, e.g. "upload.ts". */
  entry: string;
  /** Only where another resource must know the ARN before the function exists; otherwise CloudFormation names it. */
  functionName?: string;
  description: string;
  environment: Record<string, string>;
  memorySize?: number;
  timeout?: Duration;
}

/**
 * One Lambda handler bundled by esbuild on this machine (no Docker): arm64, Node.js 24, ESM with source maps,
 * the AWS SDK bundled in so the code in AWS is the code the local stack tested, X-Ray tracing for Powertools
 * Tracer, and a log group whose retention we own instead of the never-expiring one Lambda would create.
 * Its role starts empty — no AWS managed policy — and gets write access to that one log group; everything else
 * it may do is granted by the caller.
 */
export class FerretFunction extends NodejsFunction {
  /** The function's own role, to grant to: `role` on the base class is optional only for imported functions. */
  readonly executionRole: Role;

  constructor(scope: Construct, id: string, props: FerretFunctionProps) {
    const logGroup = new LogGroup(scope, `${id}Logs`, {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new Role(scope, `${id}Role`, {
      description: `Runs the Ferret ${props.entry} handler`,
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
    });
    logGroup.grantWrite(role);
    acknowledgeTracing(role);
    super(scope, id, {
      entry: `${repoRoot}functions/handlers/${props.entry}`,
      handler: "handler",
      functionName: props.functionName,
      projectRoot: repoRoot,
      depsLockFilePath: `${repoRoot}package-lock.json`,
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(29),
      tracing: Tracing.ACTIVE,
      logGroup,
      role,
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        POWERTOOLS_SERVICE_NAME: "ferret",
        POWERTOOLS_METRICS_NAMESPACE: "Ferret",
        POWERTOOLS_LOG_LEVEL: "INFO",
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: "node24",
        minify: true,
        sourceMap: true,
        bundleAwsSDK: true,
        mainFields: ["module", "main"],
        // core/ finds its WebAssembly kernels beside the bundle; `npm ci` builds them (prepare: build:wasm).
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir, outputDir) => [
            `test -f "${inputDir}/${KERNELS}" || { echo "${KERNELS} is missing: run npm run build:wasm" >&2; exit 1; }`,
            `cp "${inputDir}/${KERNELS}" "${outputDir}/kernels.wasm"`,
          ],
        },
        // Some CommonJS dependencies call require() at run time; an ESM bundle has no require of its own.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    });
    this.executionRole = role;
  }
}

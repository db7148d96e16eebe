import { Stack, Validations } from "aws-cdk-lib";
import { flattenCfnReference } from "cdk-nag/lib/utils/flatten-cfn-reference.js";
import type { IConstruct } from "constructs";

/**
 * Acknowledges one cdk-nag AwsSolutions-IAM5 finding — the wildcard policy resource `resource` (an ARN, tokens
 * allowed) — on `scope` and its children. cdk-nag names each finding after the flattened resource string, so
 * this covers exactly that wildcard and no other one that might be granted later.
 */
export function acknowledgeWildcard(scope: IConstruct, resource: string, reason: string): void {
  const finding = flattenCfnReference(Stack.of(scope).resolve(resource));
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[Resource::${finding}]`, reason });
}

/** Active X-Ray tracing grants xray:PutTraceSegments and xray:PutTelemetryRecords, which take no resource. */
export function acknowledgeTracing(role: IConstruct): void {
  Validations.of(role).acknowledge({
    id: "AwsSolutions-IAM5[Resource::*]",
    reason:
      "Active tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which have no resource scope.",
  });
}

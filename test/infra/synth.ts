// Synthesizes the Ferret stack as `npx cdk synth` does (cdk.json's feature flags, cdk-nag), and reads the result.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Validations } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { constructId } from "../../infra/cdk/handlers.ts";
import { FerretStack, type FerretStackProps } from "../../infra/cdk/stack.ts";

/** cdk.json's context: the feature flags `npx cdk synth` runs with. */
export const cdkContext = (
  JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
    context: Record<string, unknown>;
  }
).context;

export interface Synthesized {
  stack: FerretStack;
  template: Template;
  /** cdk-nag AwsSolutions findings nobody acknowledged, as "rule at construct path". */
  nagFindings: string[];
}

/**
 * Synthesizes the stack with cdk-nag's AwsSolutions checks, the plugin the app registers. Bundling is skipped
 * through CDK's own bundling-stacks context — the template is the same, only the code asset is a placeholder —
 * and so is CloudFormation's schema validation (20 s here): `npx cdk synth` runs both, and bundling.test.ts
 * bundles a handler for real.
 */
export function synthesize(props?: FerretStackProps): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), "ferret-cdk-"));
  const app = new App({
    outdir,
    context: { ...cdkContext, "aws:cdk:bundling-stacks": [] },
    builtinCloudFormationValidation: false,
  });
  const stack = new FerretStack(app, "Ferret", props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  let nagFindings: string[] = [];
  try {
    app.synth();
  } catch (error) {
    // A failed validation still writes the template and its report; anything else is a real error.
    nagFindings = reportedViolations(outdir);
    if (nagFindings.length === 0) throw error;
  }
  const template = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.template.json`), "utf8"));
  rmSync(outdir, { recursive: true });
  return { stack, template: Template.fromJSON(template), nagFindings };
}

function reportedViolations(outdir: string): string[] {
  const path = join(outdir, "validation-report.json");
  if (!existsSync(path)) return [];
  const report = JSON.parse(readFileSync(path, "utf8")) as {
    pluginReports: { violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[] }[];
  };
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} at ${c.constructPath}`)),
  );
}

/** A CloudFormation Fn::Join'ed string with each Ref/GetAtt written as <Name> or <Name.Attr>, e.g. for JSON.parse. */
export function flatten(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as Record<string, unknown>;
  if (v["Fn::Join"]) {
    const [sep, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(flatten).join(sep);
  }
  if (v.Ref) return `<${v.Ref as string}>`;
  if (v["Fn::GetAtt"]) return `<${(v["Fn::GetAtt"] as string[]).join(".")}>`;
  throw new Error(`cannot flatten ${JSON.stringify(value)}`);
}

export interface Resource {
  Type: string;
  Properties: Record<string, unknown>;
  DeletionPolicy?: string;
}
export interface Statement {
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** The one resource of `type` (matching `props`), as [logical id, resource]; throws unless exactly one. */
export function only(template: Template, type: string, props?: unknown): [string, Resource] {
  const found = Object.entries(template.findResources(type, props) as Record<string, Resource>);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0] as [string, Resource];
}

/** The logical id of the function serving handler `file` ("upload.ts" → "HandlersUpload1A2B3C4D"). */
export function functionId(template: Template, file: string): string {
  const prefix = `Handlers${constructId(file)}`;
  const ids = Object.keys(template.findResources("AWS::Lambda::Function")).filter(
    (id) => id.startsWith(prefix) && /^[0-9A-F]{8}$/.test(id.slice(prefix.length)),
  );
  if (ids.length !== 1)
    throw new Error(`expected one function for ${file}, found ${ids.join(", ") || "none"}`);
  return ids[0] as string;
}

export function functionOf(template: Template, file: string): Resource {
  return template.findResources("AWS::Lambda::Function")[functionId(template, file)] as Resource;
}

export function environmentOf(template: Template, file: string): Record<string, unknown> {
  return (functionOf(template, file).Properties.Environment as { Variables: Record<string, unknown> })
    .Variables;
}

/** Every IAM statement on the role of the function serving `file`. */
export function statementsOf(template: Template, file: string): Statement[] {
  const role = functionOf(template, file).Properties.Role as { "Fn::GetAtt": string[] };
  return Object.values(template.findResources("AWS::IAM::Policy") as Record<string, Resource>)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role["Fn::GetAtt"][0]))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

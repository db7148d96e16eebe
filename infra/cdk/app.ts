// The CDK app `npx cdk synth` / `npx cdk deploy` runs (cdk.json). Environment-agnostic on purpose: synthesis
// needs no AWS credentials, no context lookups and no Docker, so it works offline and in CI.
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { FerretStack } from "./stack.ts";

const app = new App();
// -c key=value gives strings; cdk.json may hold JSON values: read both the same way.
const context = (key: string): string | undefined => {
  const value: unknown = app.node.tryGetContext(key);
  return value === undefined ? undefined : String(value);
};

new FerretStack(app, context("ferret:stackName") ?? "Ferret", {
  description: "Ferret: federated full-parameter fine-tuning of language models (serverless backend)",
  deletionProtection: context("ferret:deletionProtection") !== "false",
  alarmEmail: context("ferret:alarmEmail"),
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

// The production bundling path, for real: FerretFunction runs esbuild on a handler, and the asset it leaves is what
// Lambda will load. One handler (the shard task: core/, its WebAssembly kernels, S3, DynamoDB, Powertools) keeps
// this to one esbuild run; every handler goes through the same FerretFunction settings.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { App, Stack } from "aws-cdk-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STEP_HANDLERS } from "../../functions/routes.ts";
import { FerretFunction, repoRoot } from "../../infra/cdk/functions.ts";
import { cdkContext } from "./synth.ts";

let outdir: string;
let asset: string;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), "ferret-bundle-"));
  const app = new App({ outdir, context: cdkContext, builtinCloudFormationValidation: false });
  const stack = new Stack(app, "Bundle");
  new FerretFunction(stack, "ReconstructShard", {
    entry: STEP_HANDLERS.reconstructShard,
    description: "bundling test",
    environment: {},
  });
  app.synth();
  const assets = readdirSync(outdir).filter((name) => name.startsWith("asset."));
  expect(assets).toHaveLength(1);
  asset = join(outdir, assets[0] as string);
});

afterAll(() => rmSync(outdir, { recursive: true }));

/** The files esbuild put into the bundle, from its source map. */
const sources = () =>
  (JSON.parse(readFileSync(join(asset, "index.mjs.map"), "utf8")) as { sources: string[] }).sources;

describe("a handler bundled by FerretFunction", () => {
  it("is one ESM file with its source map, and the WebAssembly kernels core/ loads beside it", () => {
    expect(readdirSync(asset).sort()).toEqual(["index.mjs", "index.mjs.map", "kernels.wasm"]);
    expect(readFileSync(join(asset, "kernels.wasm"))).toEqual(
      readFileSync(join(repoRoot, "build/kernels.wasm")),
    );
    const map = JSON.parse(readFileSync(join(asset, "index.mjs.map"), "utf8")) as { sources: string[] };
    expect(map.sources.some((source) => source.endsWith("functions/handlers/reconstruct-shard.ts"))).toBe(
      true,
    );
  });

  it("carries its own AWS SDK and Powertools, the versions the local stack tested", () => {
    for (const pkg of ["@aws-sdk/client-s3", "@aws-sdk/client-dynamodb", "@aws-lambda-powertools/logger"]) {
      expect(
        sources().some((source) => source.includes(`node_modules/${pkg}/`)),
        pkg,
      ).toBe(true);
    }
  });

  it("loads as an ES module and exports the Lambda handler", async () => {
    expect(existsSync(join(asset, "index.mjs"))).toBe(true);
    const bundle = (await import(pathToFileURL(join(asset, "index.mjs")).href)) as { handler?: unknown };
    expect(typeof bundle.handler).toBe("function");
  });
});

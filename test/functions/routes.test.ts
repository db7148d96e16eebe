// The route table is what both the CDK HTTP API and the local router are built from: every entry must name a
// handler file that exists and exports `handler`, and no two routes may claim the same method and path.
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ENVIRONMENT } from "../../functions/env.ts";
import { ROUTES, STEP_HANDLERS } from "../../functions/routes.ts";

const handlerUrl = (file: string) => new URL(`../../functions/handlers/${file}`, import.meta.url);

describe("functions/routes.ts", () => {
  it.each([...ROUTES.map((r) => r.handler), ...Object.values(STEP_HANDLERS)])(
    "%s exports a handler",
    async (file) => {
      expect(existsSync(handlerUrl(file))).toBe(true);
      const module = (await import(handlerUrl(file).href)) as { handler?: unknown };
      expect(typeof module.handler).toBe("function");
    },
  );

  it("has one route per method and path, each in HTTP API template syntax", () => {
    const keys = ROUTES.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const route of ROUTES) expect(route.path).toMatch(/^(\/([a-z-]+|\{[A-Za-z]+\}))+$/);
  });

  it("scopes every client route to one run through {runId}", () => {
    for (const route of ROUTES.filter((r) => r.auth === "client"))
      expect(route.path).toMatch(/^\/runs\/\{runId\}\//);
  });

  it("documents the environment the CDK stack must set", () => {
    for (const name of ["TABLE_NAME", "BUCKET_NAME", "STATE_MACHINE_ARN", "DEADLINE_FUNCTION_ARN"] as const) {
      expect(ENVIRONMENT[name].length).toBeGreaterThan(10);
    }
  });
});

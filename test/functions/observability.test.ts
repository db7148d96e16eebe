// What the handlers' tracing records in AWS (where X-Ray is on): never a reply, which can hold a client's token.
import type { Context } from "aws-lambda";
import { afterEach, describe, expect, it, vi } from "vitest";
import { observed, tracer } from "../../functions/observability.ts";

afterEach(() => vi.restoreAllMocks());

describe("tracing", () => {
  it("records no handler response in trace metadata", async () => {
    // X-Ray itself is the cloud: the tracer is switched on and its segment stands in for the daemon's.
    const recorded: unknown[] = [];
    const segment = {
      addNewSubsegment: () => segment,
      close() {},
      addAnnotation() {},
      addMetadata: (...args: unknown[]) => recorded.push(args),
      addError() {},
      flush() {},
    };
    vi.spyOn(tracer, "isTracingEnabled").mockReturnValue(true);
    vi.spyOn(tracer, "getSegment").mockReturnValue(segment as never);
    vi.spyOn(tracer, "setSegment").mockImplementation(() => {});
    const putMetadata = vi.spyOn(tracer, "putMetadata").mockImplementation((...args) => {
      recorded.push(args);
    });
    const token = "ferret_0123456789abcdef-shown-once";
    const handler = observed(async () => ({ statusCode: 201, body: JSON.stringify({ token }) }));
    const context = { functionName: "register-client", awsRequestId: "r-1" } as Context;
    expect((await handler({}, context)).body).toContain(token);
    expect(putMetadata).not.toHaveBeenCalledWith(expect.anything(), expect.stringContaining(token));
    expect(JSON.stringify(recorded)).not.toContain(token);
  });
});

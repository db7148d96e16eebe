import { describe, expect, it } from "vitest";
import { sigV4Signer } from "../../client/api/sigv4.ts";
import { regionOf } from "../../client/cli/connection.ts";

describe("IAM signing of operator requests", () => {
  it("finds the region in an API Gateway endpoint, and nothing in other hosts", () => {
    expect(regionOf("https://abc123.execute-api.eu-west-1.amazonaws.com")).toBe("eu-west-1");
    expect(regionOf("http://127.0.0.1:4000")).toBeUndefined();
  });

  it("signs with SigV4 for execute-api, covering the body, with the session token when there is one", async () => {
    const sign = sigV4Signer("eu-west-1", async () => ({
      accessKeyId: "AKIDEXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      sessionToken: "session",
    }));
    const url = new URL("https://abc123.execute-api.eu-west-1.amazonaws.com/runs?x=1");
    const request = { method: "POST", url, headers: { "content-type": "application/json" }, body: '{"a":1}' };
    const headers = await sign(request);
    expect(headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
    );
    expect(headers["x-amz-security-token"]).toBe("session");
    expect(headers["content-type"]).toBe("application/json");
    const other = await sign({ ...request, body: '{"a":2}' });
    expect(other.authorization).not.toBe(headers.authorization);
  });
});

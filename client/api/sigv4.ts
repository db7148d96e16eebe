// Operator routes in AWS sit behind IAM: requests are signed with SigV4 for the `execute-api` service, using the
// standard credential chain (environment, ~/.aws profiles, SSO, instance roles). Locally the admin token is used.
import { createHash, createHmac } from "node:crypto";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { SignatureV4 } from "@smithy/signature-v4";

/** SHA-256 (or HMAC-SHA-256 with a secret) in the shape the signer expects. */
class Sha256 {
  private hash;
  constructor(secret?: string | Uint8Array | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", toBuffer(secret));
  }
  update(data: string | Uint8Array | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

function toBuffer(data: string | Uint8Array | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === "string") return Buffer.from(data, "utf8");
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export type Signer = (request: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}) => Promise<Record<string, string>>;

/** Returns the headers to send (the given ones plus authorization, x-amz-date and, with session credentials, the token). */
export function sigV4Signer(region: string, credentials = defaultProvider()): Signer {
  const signer = new SignatureV4({ service: "execute-api", region, credentials, sha256: Sha256 });
  return async ({ method, url, headers, body }) => {
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: { ...headers, host: url.host },
      body,
    });
    const { host: _host, ...rest } = signed.headers as Record<string, string>;
    return rest;
  };
}

// One endpoint in front of DynamoDB Local and s3rver, the shape LocalStack presents: every request goes to the
// emulator of the service named in its SigV4 credential scope (the Authorization header, or X-Amz-Credential
// for a presigned URL). Lets the integration suite exercise FERRET_AWS_ENDPOINT mode where LocalStack cannot run.
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { freePort } from "../../infra/local/emulators.ts";

/** The service of a SigV4 credential scope `AKID/yyyymmdd/region/service/aws4_request`. */
export function signedService(req: Pick<IncomingMessage, "headers" | "url">): string | undefined {
  const header = /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(
    req.headers.authorization ?? "",
  );
  if (header) return header[1];
  const query = new URL(req.url ?? "/", "http://edge").searchParams.get("X-Amz-Credential");
  return query?.split("/")[3];
}

export interface EdgeEndpoint {
  url: string;
  /** Requests forwarded, by service. */
  forwarded: Map<string, number>;
  close(): Promise<void>;
}

/** Serves `services` (service name → emulator base URL) on one loopback port. The Host header is passed on as
 * sent, so signatures the emulators check still verify. */
export async function startEdgeEndpoint(services: Record<string, string>): Promise<EdgeEndpoint> {
  const forwarded = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const service = signedService(req);
    const target = service === undefined ? undefined : services[service];
    if (!target) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: `no emulator for service ${service ?? "(unsigned request)"}` }));
      req.resume();
      return;
    }
    forwarded.set(service as string, (forwarded.get(service as string) ?? 0) + 1);
    const upstream = request(
      new URL(req.url ?? "/", target),
      { method: req.method, headers: req.headers },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    upstream.on("error", (error) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: `${service} emulator: ${error.message}` }));
    });
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    forwarded,
    close: () =>
      new Promise((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

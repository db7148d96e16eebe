// The local stack's emulators answer this machine only: DESIGN.md puts them on loopback ports, and DynamoDB
// Local's jar alone listened on every interface, open to anyone who could reach the machine.
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Emulators, startEmulators } from "../../infra/local/emulators.ts";

const outward = Object.values(networkInterfaces())
  .flat()
  .filter((a) => a !== undefined && a.family === "IPv4" && !a.internal)
  .map((a) => a?.address as string);

/** Whether a TCP connection to host:port is accepted (then closed at once). */
const accepts = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect({ host, port, timeout: 2_000 });
    const settle = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once("connect", () => settle(true));
    socket.once("error", () => settle(false));
    socket.once("timeout", () => settle(false));
  });

let emulators: Emulators;
beforeAll(async () => {
  emulators = await startEmulators("ferret-loopback");
});
afterAll(() => emulators?.stop());

describe("the local emulators", () => {
  it.skipIf(outward.length === 0)("accept connections on loopback and on no other address", async () => {
    for (const endpoint of [emulators.endpoint.dynamodb, emulators.endpoint.s3]) {
      const port = Number(new URL(endpoint).port);
      expect(await accepts("127.0.0.1", port)).toBe(true);
      for (const address of outward)
        expect({ address, port, open: await accepts(address, port) }).toMatchObject({ open: false });
    }
  });
});

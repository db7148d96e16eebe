import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EXIT } from "../../client/cli/output.ts";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { start } from "../../client/demo/processes.ts";
import { ensureDeviceAvailable } from "../../client/engine/session.ts";

const root = await mkdtemp(join(tmpdir(), "ferret-device-"));
afterAll(() => rm(root, { recursive: true, force: true }));

const webgpuRuns = () =>
  ensureDeviceAvailable("webgpu").then(
    () => true,
    () => false,
  );

describe("the device check", () => {
  it("passes for the cpu", async () => {
    await expect(ensureDeviceAvailable("cpu")).resolves.toBeUndefined();
  });

  // The client checks its device before it asks for a round, not once a round has selected it: the server at
  // this endpoint does not exist, and the command must stop on the device, not retry the network.
  it("stops `ferret client` before it contacts the server (exit 3)", async (ctx) => {
    if (await webgpuRuns()) ctx.skip(); // this machine has a WebGPU adapter: nothing to check here
    const model = join(root, "model");
    await writeSeededModel(model, gpt2Config({ layers: 1, width: 16, heads: 2, context: 32 }), 1);
    const data = join(root, "data.jsonl");
    const rows = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ text: `row ${i} of the client's text` }),
    );
    await writeFile(data, `${rows.join("\n")}\n`);
    const args = ["client", "--endpoint", "http://127.0.0.1:9", "--run", "run", "--token", "token"];
    const { code, stderr } = await start([...args, "--model", model, "--data", data, "--device", "webgpu"], {
      FERRET_CACHE_DIR: root,
    }).exit;
    expect(code).toBe(EXIT.input);
    expect(stderr).toContain("apt install libvulkan1 libglx0");
    expect(stderr).not.toMatch(/retry|unreachable/i);
  });
});

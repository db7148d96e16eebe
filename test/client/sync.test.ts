import { describe, expect, it } from "vitest";
import { ApiError } from "../../client/api/errors.ts";
import type { CheckpointLocation, ClientApi } from "../../client/api/routes.ts";

type Shard = CheckpointLocation["manifest"]["shards"][number];

import { CheckpointCorruptError, syncTo } from "../../client/sync/sync.ts";
import { bytesOf } from "../../client/sync/weights.ts";
import { buildPlan } from "../../core/plan.ts";
import { FakeServer } from "./fake-server.ts";

const same = (a: Float32Array, b: Float32Array) => Buffer.from(bytesOf(a)).equals(Buffer.from(bytesOf(b)));

function server(rounds: number, family: "gaussian" | "rademacher" | "sketch" = "gaussian") {
  const s = new FakeServer(undefined, family);
  for (let r = 0; r < rounds; r++) s.runRound(r);
  return s;
}

describe("sync by replaying the update log", () => {
  it.each(["gaussian", "rademacher", "sketch"] as const)(
    "%s: replaying rounds gives the server's shard-by-shard bytes exactly",
    async (family) => {
      const s = server(3, family);
      const api = s.api() as unknown as ClientApi;
      const held = { checkpoint: 0, values: (s.checkpoints[0] as Float32Array).slice() };
      const synced = await syncTo(api, s.plan, held, 3, { mode: "replay" });
      expect(synced.result).toMatchObject({ method: "replay", replayed: 3, mismatched: [] });
      expect(same(synced.values, s.checkpoints[3] as Float32Array)).toBe(true);
    },
  );

  it("skips a FAILED round, which has no log entry and leaves the checkpoint where it was", async () => {
    const s = new FakeServer();
    s.runRound(0);
    s.runRound(1, 2, true);
    s.runRound(2);
    expect(s.entries.map((e) => [e.round, e.baseCheckpoint, e.resultCheckpoint])).toEqual([
      [0, 0, 1],
      [2, 1, 3],
    ]);
    const held = { checkpoint: 0, values: (s.checkpoints[0] as Float32Array).slice() };
    const synced = await syncTo(s.api() as unknown as ClientApi, s.plan, held, 3, { mode: "replay" });
    expect(synced.result).toMatchObject({ method: "replay", replayed: 2 });
    expect(same(synced.values, s.checkpoints[3] as Float32Array)).toBe(true);
  });

  it("downloads when replayed bytes fail the manifest's hashes (a tampered log entry)", async () => {
    const s = server(2);
    const entry = s.entries[1] as { coefficients: string };
    const raw = Buffer.from(entry.coefficients, "base64");
    raw[0] = (raw[0] as number) ^ 0x40;
    entry.coefficients = raw.toString("base64");
    const held = { checkpoint: 0, values: (s.checkpoints[0] as Float32Array).slice() };
    const synced = await syncTo(s.api() as unknown as ClientApi, s.plan, held, 2, { mode: "replay" });
    expect(synced.result.method).toBe("download");
    expect(synced.result.mismatched.length).toBeGreaterThan(0);
    expect(same(synced.values, s.checkpoints[2] as Float32Array)).toBe(true);
  });

  it("downloads when too far behind, when asked to, or when holding nothing", async () => {
    const s = server(3);
    const api = s.api() as unknown as ClientApi;
    const held = () => ({ checkpoint: 0, values: (s.checkpoints[0] as Float32Array).slice() });
    const far = await syncTo(api, s.plan, held(), 3, { mode: "replay", maxReplayRounds: 2 });
    const asked = await syncTo(api, s.plan, held(), 3, { mode: "download" });
    const fresh = await syncTo(api, s.plan, undefined, 3, { mode: "replay" });
    for (const synced of [far, asked, fresh]) {
      expect(synced.result.method).toBe("download");
      expect(same(synced.values, s.checkpoints[3] as Float32Array)).toBe(true);
    }
  });

  it("re-verifies a checkpoint already held, and replaces it when a block was damaged on disk", async () => {
    const s = server(1);
    const api = s.api() as unknown as ClientApi;
    const good = await syncTo(
      api,
      s.plan,
      { checkpoint: 1, values: (s.checkpoints[1] as Float32Array).slice() },
      1,
      {
        mode: "replay",
      },
    );
    expect(good.result.method).toBe("verified");
    const damaged = (s.checkpoints[1] as Float32Array).slice();
    damaged[damaged.length - 1] = 42;
    const repaired = await syncTo(api, s.plan, { checkpoint: 1, values: damaged }, 1, { mode: "replay" });
    expect(repaired.result).toMatchObject({ method: "download", mismatched: [s.plan.blocks.length - 1] });
    expect(same(repaired.values, s.checkpoints[1] as Float32Array)).toBe(true);
  });

  it("refuses a downloaded shard whose bytes differ from the manifest", async () => {
    const s = server(1);
    s.corruptShard = 1;
    const sync = syncTo(s.api() as unknown as ClientApi, s.plan, undefined, 1, { mode: "download" });
    await expect(sync).rejects.toThrow(CheckpointCorruptError);
    await expect(sync).rejects.toThrow(
      /^shard 1 of checkpoint 1: \d+ bytes with SHA-256 \w+; the manifest says/,
    );
  });

  it("downloads a few shards at a time, each checked and placed at its own offset", async () => {
    const layers = Array.from({ length: 12 }, (_, i) => ({ name: `layer${i}.weight`, shape: [8, 4] }));
    const s = new FakeServer(buildPlan(layers, { totalK: 64, targetBlockSize: 32 }));
    s.runRound(0);
    s.runRound(1);
    const api = s.api() as unknown as ClientApi;
    const download = api.http.download.bind(api.http);
    let inFlight = 0;
    let peak = 0;
    // Each shard answers after a turn of the event loop, later shards sooner, so they finish out of order.
    api.http.download = async (url, maxBytes) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      const shard = Number(url.split("/").at(-1));
      for (let turn = 0; turn < 8 - shard; turn++) await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      return download(url, maxBytes);
    };
    const messages: string[] = [];
    const synced = await syncTo(api, s.plan, undefined, 2, {
      mode: "download",
      onProgress: (m) => messages.push(m),
    });
    expect(same(synced.values, s.checkpoints[2] as Float32Array)).toBe(true);
    const shards = (await api.checkpoint(2)).manifest.shards.length;
    expect(shards).toBeGreaterThan(4);
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(4);
    // One message per shard, every shard named once, with a running count.
    const named = messages.map((m) => Number(/downloaded shard (\d+)\//.exec(m)?.[1]));
    expect(named.sort((a, b) => a - b)).toEqual(Array.from({ length: shards }, (_, i) => i + 1));
    expect(messages.at(-1)).toMatch(new RegExp(`\\(${shards} done\\)$`));
  });

  /** A server whose shard URLs carry a generation; URLs of an old generation answer 403 once `expireAfter` shards came. */
  function expiringUrls(expireAfter: number, freshLast: number) {
    const layers = Array.from({ length: 12 }, (_, i) => ({ name: `layer${i}.weight`, shape: [8, 4] }));
    const s = new FakeServer(buildPlan(layers, { totalK: 64, targetBlockSize: 32 }));
    s.runRound(0);
    const api = s.api() as unknown as ClientApi;
    const { checkpoint, download } = {
      checkpoint: api.checkpoint.bind(api),
      download: api.http.download.bind(api.http),
    };
    let generation = 0;
    const served: string[] = [];
    api.checkpoint = async (n) => {
      const location = await checkpoint(n);
      const gen = generation++;
      return { ...location, shardUrls: location.shardUrls.map((url) => `${url}#${gen}`) };
    };
    api.http.download = async (url, maxBytes) => {
      const [plain, gen] = url.split("#") as [string, string];
      const stale =
        Number(gen) < generation - 1 || (Number(gen) <= freshLast && served.length >= expireAfter);
      if (stale) throw new ApiError(403, "storage", "Request has expired");
      served.push(plain);
      return download(plain, maxBytes);
    };
    return { s, api, served };
  }

  it("asks for fresh shard URLs when they expire mid-download, keeping the shards it has", async () => {
    const { s, api, served } = expiringUrls(3, 0);
    const messages: string[] = [];
    const synced = await syncTo(api, s.plan, undefined, 1, {
      mode: "download",
      onProgress: (m) => messages.push(m),
    });
    expect(same(synced.values, s.checkpoints[1] as Float32Array)).toBe(true);
    expect(new Set(served).size).toBe(served.length); // no shard fetched twice
    expect(messages).toContain("shard URLs of checkpoint 1 expired after 3 shards; asking for fresh ones");
  });

  it("gives up with the storage's refusal when fresh URLs move the download no further", async () => {
    const { s, api } = expiringUrls(0, Number.POSITIVE_INFINITY);
    await expect(syncTo(api, s.plan, undefined, 1, { mode: "download" })).rejects.toThrow(
      /403 storage: Request has expired/,
    );
  });
});

describe("a manifest the client cannot trust", () => {
  /** A server whose manifest for checkpoint 1 is changed by `tamper` (URLs included) before the client reads it. */
  function tampered(tamper: (location: Awaited<ReturnType<ClientApi["checkpoint"]>>) => void) {
    const s = server(1);
    const api = s.api() as unknown as ClientApi;
    const checkpoint = api.checkpoint.bind(api);
    const downloaded: string[] = [];
    const download = api.http.download.bind(api.http);
    api.checkpoint = async (n) => {
      const location = structuredClone(await checkpoint(n));
      tamper(location);
      return location;
    };
    api.http.download = async (url, maxBytes) => {
      downloaded.push(url);
      return download(url, maxBytes);
    };
    return { s, api, downloaded };
  }

  it.each([
    ["another checkpoint's", (l: CheckpointLocation) => Object.assign(l.manifest, { checkpoint: 7 })],
    ["a path for a number", (l: CheckpointLocation) => Object.assign(l.manifest, { checkpoint: "../../x" })],
    ["a shard past the end", (l: CheckpointLocation) => (l.manifest.shards[0] as Shard).length++],
    ["overlapping shards", (l: CheckpointLocation) => (l.manifest.shards[1] as Shard).start--],
    ["a URL short", (l: CheckpointLocation) => l.shardUrls.pop()],
  ])("is refused before any download: %s", async (_, tamper) => {
    const { s, api, downloaded } = tampered(tamper);
    await expect(syncTo(api, s.plan, undefined, 1, { mode: "download" })).rejects.toThrow(
      CheckpointCorruptError,
    );
    expect(downloaded).toEqual([]);
  });

  it("is refused when the fresh URLs asked for after an expiry are short", async () => {
    let calls = 0;
    const { s, api } = tampered((location) => {
      if (++calls > 1) location.shardUrls.pop();
    });
    const download = api.http.download.bind(api.http);
    api.http.download = async (url, maxBytes) => {
      if (calls === 1) throw new ApiError(403, "storage", "Request has expired");
      return download(url, maxBytes);
    };
    await expect(syncTo(api, s.plan, undefined, 1, { mode: "download" })).rejects.toThrow(
      /lists \d+ shards and came with \d+ URLs/,
    );
  });

  it("reads no more of a shard than the manifest's length", async () => {
    const { s, api } = tampered(() => {});
    const full = api.http.download.bind(api.http);
    const limits: number[] = [];
    api.http.download = async (url, maxBytes) => {
      limits.push(maxBytes as number);
      return full(url, maxBytes);
    };
    const synced = await syncTo(api, s.plan, undefined, 1, { mode: "download" });
    const shards = (await api.checkpoint(1)).manifest.shards;
    expect(limits.sort((a, b) => a - b)).toEqual(
      shards.map((shard) => shard.length * 4).sort((a, b) => a - b),
    );
    expect(same(synced.values, s.checkpoints[1] as Float32Array)).toBe(true);
  });
});

describe("replay per strategy", () => {
  const held0 = (s: FakeServer) => ({ checkpoint: 0, values: (s.checkpoints[0] as Float32Array).slice() });

  it("fedkseed entries replay on the seed pool plan to the server's shard-by-shard bytes", async () => {
    const s = new FakeServer();
    s.runRound(0, 2, false, "fedkseed");
    s.runRound(1, 3, false, "fedkseed");
    s.runRound(2, 2, false, "ferret");
    const synced = await syncTo(s.api() as unknown as ClientApi, s.plan, held0(s), 3, { mode: "replay" });
    expect(synced.result).toMatchObject({ method: "replay", replayed: 3, mismatched: [] });
    expect(same(synced.values, s.checkpoints[3] as Float32Array)).toBe(true);
  });

  it("stops at a fedavg entry (no coefficients to replay) and downloads the checkpoint", async () => {
    const s = new FakeServer();
    s.runRound(0, 2, false, "ferret");
    s.runRound(1, 2, false, "fedavg");
    const messages: string[] = [];
    const synced = await syncTo(s.api() as unknown as ClientApi, s.plan, held0(s), 2, {
      mode: "replay",
      onProgress: (m) => messages.push(m),
    });
    expect(synced.result).toMatchObject({ method: "download", replayed: 0 });
    expect(messages[0]).toMatch(/round 1 averaged full updates \(fedavg\)/);
    expect(same(synced.values, s.checkpoints[2] as Float32Array)).toBe(true);
  });

  it("reads entries without a strategy (written before strategies existed) as ferret", async () => {
    const s = server(2);
    for (const entry of s.entries) delete entry.strategy;
    const synced = await syncTo(s.api() as unknown as ClientApi, s.plan, held0(s), 2, { mode: "replay" });
    expect(synced.result).toMatchObject({ method: "replay", replayed: 2 });
    expect(same(synced.values, s.checkpoints[2] as Float32Array)).toBe(true);
  });

  it("refuses a fedkseed entry that does not say its pool size", async () => {
    const s = new FakeServer();
    s.runRound(0, 2, false, "fedkseed");
    delete (s.entries[0] as { seedPool?: number }).seedPool;
    await expect(
      syncTo(s.api() as unknown as ClientApi, s.plan, held0(s), 1, { mode: "replay" }),
    ).rejects.toThrow(/fedkseed round 0 has no seedPool; expected the pool size K/);
  });
});

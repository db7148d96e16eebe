import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type DemoSummary, reportHtml } from "../../client/demo/report.ts";
import { heldOutSotu, writeSotuSplit } from "../../client/demo/sotu.ts";

describe("demo data and report", () => {
  it("gives each client one president's speeches, as JSONL of {text}", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ferret-sotu-"));
    try {
      const split = await writeSotuSplit(dir, 3, 3000);
      expect(new Set(split.map((s) => s.president)).size).toBe(3);
      for (const s of split) {
        const lines = (await readFile(s.file, "utf8")).trim().split("\n");
        expect(lines).toHaveLength(s.examples);
        for (const line of lines) expect(Object.keys(JSON.parse(line))).toEqual(["text"]);
        expect(s.chars).toBeGreaterThanOrEqual(3000);
        expect(s.chars).toBeLessThan(3000 + 1000);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("holds out each president's text after the training share, sharing no sentence with it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ferret-sotu-"));
    try {
      const split = await writeSotuSplit(dir, 2, 3000);
      const trained = (
        await Promise.all(split.map(async (s) => (await readFile(s.file, "utf8")).trim().split("\n")))
      ).flatMap((lines) => lines.map((line) => JSON.parse(line).text as string));
      const heldOut = heldOutSotu(2, 3000, 2000);
      const chars = heldOut.reduce((n, e) => n + ("text" in e ? e.text.length : 0), 0);
      expect(chars).toBeGreaterThanOrEqual(2 * 2000 - 2 * 1000);
      const sentences = (examples: { text: string }[]) =>
        new Set(examples.flatMap((e) => (e.text.match(/[^.!?]+[.!?]+/g) ?? []).map((t) => t.trim())));
      const trainedSentences = sentences(trained.map((text) => ({ text })));
      const shared = (examples: { text: string }[]) =>
        [...sentences(examples)].filter((t) => t.length > 40 && trainedSentences.has(t)).length;
      expect(shared(heldOut as { text: string }[])).toBe(0);
      // The check can fail: text from the start of each president's speeches is what the clients train on.
      expect(shared(heldOutSotu(2, 0, 3000) as { text: string }[])).toBeGreaterThan(10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("renders one plotted point per round and escapes names", () => {
    const round = (r: number) => ({
      round: r,
      evalLoss: 3 - r / 10,
      evalLossByClient: {},
      bytesUpPerClient: 1000,
      bytesDownPerClient: 2000,
      fullModelBytes: 40_000,
      seconds: 1.5,
      trainLoss: 3,
      clients: 2,
    });
    const summary: DemoSummary = {
      machine: { cpus: 2, platform: "linux/x64", node: "v20" },
      model: { dir: "m", parameters: 10_000, config: {} },
      run: { runId: "r", basis: "sketch", totalK: 256, blocks: 4, localSteps: 5, globalLr: 1 },
      clients: [{ name: "<script>", examples: 3, chars: 10 }],
      initialEvalLoss: 5.5,
      rounds: [round(0), round(1), round(2)],
    };
    const html = reportHtml(summary);
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;");
    expect(html.match(/<svg /g)).toHaveLength(3);
    // eval loss: checkpoint 0 plus one point per round; the other two plots: one point per round and series.
    expect(html.match(/<circle /g)).toHaveLength(4 + 3 * 3 + 3);
    expect(html.match(/<tr><td>/g)).toHaveLength(3);
  });
});

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type DemoSummary, reportHtml } from "../../client/demo/report.ts";
import { writeSotuSplit } from "../../client/demo/sotu.ts";

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

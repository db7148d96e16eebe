import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  convergenceSvg,
  type EntryRun,
  goalLines,
  markdownReport,
  markdownTable,
  median,
  type RoundPoint,
  roundsToTarget,
  summarize,
} from "../../bench/convergence/results.ts";
import { describeMachine } from "../../bench/machine.ts";

const point = (round: number, evalLoss: number, bytesUp = 100, bytesDown = 200): RoundPoint => ({
  round,
  evalLoss,
  localSeconds: 2,
  aggregateSeconds: 1,
  bytesUp,
  bytesDown,
  trainLoss: evalLoss + 0.1,
});

const run = (name: string, losses: number[], bytesUp = 100): EntryRun => ({
  name,
  initialEvalLoss: 3,
  rounds: losses.map((loss, i) => point(i + 1, loss, bytesUp)),
});

const context = { settings: { rounds: 3 }, machine: describeMachine() };

describe("convergence results", () => {
  it("counts rounds to the first checkpoint at or below the target, null when none reaches it", () => {
    const curve = [point(1, 2.9), point(2, 2.5), point(3, 2.7), point(4, 2.4)];
    expect(roundsToTarget(curve, 2.5)).toBe(2);
    expect(roundsToTarget(curve, 2.45)).toBe(4);
    expect(roundsToTarget(curve, 2.3)).toBeNull();
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { maxLength: 20 }),
        fc.double({ min: 0, max: 10, noNaN: true }),
        (losses, target) => {
          const found = roundsToTarget(
            losses.map((loss, i) => point(i + 1, loss)),
            target,
          );
          if (found === null) return losses.every((l) => l > target);
          return (
            (losses[found - 1] as number) <= target && losses.slice(0, found - 1).every((l) => l > target)
          );
        },
      ),
    );
  });

  it("takes the median of an odd or even count of rounds, whatever their order", () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it("writes issue 6's schema with FedKSeed's final loss as the target", () => {
    const results = summarize(
      [run("ferret-sketch", [2.8, 2.6, 2.5], 3000), run("fedkseed", [2.95, 2.9, 2.85], 8200)],
      "fedkseed",
      context,
    );
    expect(results.target).toBe(2.85);
    expect(Object.keys(results)).toEqual(expect.arrayContaining(["target", "strategies"]));
    const [ferret, fedkseed] = results.strategies;
    expect(Object.keys(ferret ?? {}).sort()).toEqual(
      [
        "name",
        "finalEvalLoss",
        "roundsToTarget",
        "uplinkBytesPerClientRound",
        "downlinkBytesPerClientRound",
        "localSecondsPerRound",
        "aggregateSecondsPerRound",
        "curve",
      ].sort(),
    );
    expect(ferret).toMatchObject({
      name: "ferret-sketch",
      finalEvalLoss: 2.5,
      roundsToTarget: 1,
      uplinkBytesPerClientRound: 3000,
      downlinkBytesPerClientRound: 200,
      localSecondsPerRound: 2,
      aggregateSecondsPerRound: 1,
    });
    expect(fedkseed?.roundsToTarget).toBe(3);
    expect(ferret?.curve).toHaveLength(3);
    expect(JSON.parse(JSON.stringify(results))).toEqual(results);
  });

  it("falls back to the worst final loss when FedKSeed was not run, and refuses an empty run", () => {
    const results = summarize([run("a", [2.5]), run("b", [2.7])], "fedkseed", context);
    expect(results.target).toBe(2.7);
    expect(results.targetFrom).toContain("not run");
    expect(() => summarize([], "fedkseed", context)).toThrow(/no entries/);
  });

  it("tabulates every strategy with its uplink ratio and loss gap against FedAvg", () => {
    const results = summarize(
      [
        run("fedavg", [2.6, 2.4], 3_370_000),
        run("ferret-sketch", [2.7, 2.45], 3370),
        run("fedkseed", [2.9, 2.8]),
      ],
      "fedkseed",
      context,
    );
    const table = markdownTable(results);
    const rows = table.split("\n").filter((line) => line.startsWith("| "));
    expect(rows).toHaveLength(4);
    expect(rows[2]).toContain("1000× less");
    expect(rows[2]).toContain("(2.08%)");
    expect(rows[3]).toMatch(/\| fedkseed \| 2\.8000 \(16\.67%\) \| 2 \|/);
  });

  it("checks issue 6's three goals per Ferret entry and says which are not met", () => {
    const results = summarize(
      [
        run("fedavg", [2.6, 2.4], 3_370_000),
        run("ferret-sketch", [2.7, 2.45], 3370),
        run("ferret-gaussian", [2.95, 2.85], 4000),
        run("fedkseed", [2.9, 2.85]),
      ],
      "fedkseed",
      context,
    );
    const [sketchLoss, sketchUplink, sketchRounds, gaussLoss, gaussUplink, gaussRounds] = goalLines(results);
    expect(sketchLoss).toMatch(/ferret-sketch: final eval loss 2\.08% .*: met; it gains 92% of FedAvg/);
    expect(sketchUplink).toMatch(/1000× smaller .*: met/);
    expect(sketchRounds).toMatch(/1 round\(s\) against FedKSeed's 2, 2\.0× fewer .*\*\*not met\*\*/);
    expect(gaussLoss).toMatch(/18\.75% .*\*\*not met\*\*/);
    expect(gaussUplink).toMatch(/843× smaller .*\*\*not met\*\*/);
    expect(gaussRounds).toMatch(/target in 2 round\(s\) against FedKSeed's 2, 1\.0× fewer/);
    const report = markdownReport(results);
    expect(report).toContain(markdownTable(results));
    expect(report).toContain(sketchRounds as string);
    expect(report).toContain(`${context.machine.cores} cores`);
  });

  it("reports each family's projection and reconstruction cost when measured", () => {
    const results = summarize([run("ferret-sketch", [2.7])], "fedkseed", {
      ...context,
      basisCost: { sketch: { projectSeconds: 0.0012, reconstructSeconds: 0.0034 } },
    });
    expect(markdownReport(results)).toContain("- sketch: project Δ 1.2 ms, reconstruct 3.4 ms");
    expect(markdownReport(summarize([run("a", [2.7])], "fedkseed", context))).not.toContain("Basis cost");
  });

  it("leaves out goals whose reference entry was not run", () => {
    expect(goalLines(summarize([run("ferret-sketch", [2.7])], "fedkseed", context))).toEqual([]);
  });

  it("plots one line per strategy from the base model's loss, plus a dashed target", () => {
    const results = summarize([run("x", [2.8, 2.6]), run("fedkseed", [2.9, 2.85])], "fedkseed", context);
    const svg = convergenceSvg(results);
    expect(svg.match(/<polyline /g)).toHaveLength(3);
    expect(svg.match(/stroke-dasharray/g)).toHaveLength(1);
    // checkpoint 0 plus each round, per strategy; the target line has no markers.
    expect(svg.match(/<circle /g)).toHaveLength(2 * 3);
  });
});

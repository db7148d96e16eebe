// The convergence benchmark's figures, from per-round measurements to bench/results/convergence.{json,md,svg}.
// Pure functions: no I/O, no clocks, so the schema, the target rule and the table are unit-tested.
import { lineChart } from "../../client/demo/report.ts";
import type { Machine } from "../machine.ts";
import type { BasisCost } from "./basis-cost.ts";

/** One committed round of one entry. `round` counts rounds done: round r's result is checkpoint r. */
export interface RoundPoint {
  round: number;
  /** Global held-out eval loss of checkpoint `round`, measured by the benchmark. */
  evalLoss: number;
  /** Mean over clients of the seconds spent in local training (steps only: no sync, eval or upload). */
  localSeconds: number;
  /** From the round closing (quorum reached) to its checkpoint committed. */
  aggregateSeconds: number;
  /**
   * Mean over clients of the bytes each client's counters saw for the round (request lines, headers, bodies):
   * up, its sync requests and its upload; down, the replies to those and its sync to the checkpoint the round
   * produced (so the base model's one-time download is no round's).
   */
  bytesUp: number;
  bytesDown: number;
  /** Mean over clients of the local training loss. */
  trainLoss: number;
}

export interface EntryRun {
  name: string;
  /** Eval loss of checkpoint 0 (the base model), the same for every entry. */
  initialEvalLoss: number;
  rounds: RoundPoint[];
}

export interface StrategyResult {
  name: string;
  finalEvalLoss: number;
  roundsToTarget: number | null;
  uplinkBytesPerClientRound: number;
  downlinkBytesPerClientRound: number;
  localSecondsPerRound: number;
  aggregateSecondsPerRound: number;
  curve: RoundPoint[];
}

export interface ConvergenceResults {
  target: number;
  strategies: StrategyResult[];
  /** Beyond issue 6's schema: what produced the figures. */
  targetFrom: string;
  initialEvalLoss: number;
  /** Per Ferret family run: its projection and reconstruction seconds at the run's K, on one thread. */
  basisCost: Record<string, BasisCost>;
  settings: Record<string, unknown>;
  machine: Machine;
}

const mean = (xs: number[]) => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * Seconds are summarized by the median round: the first round also builds each client's ONNX Runtime session,
 * and other work on a shared machine lands on a few rounds; bytes, which neither touches, by the mean.
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The first round (1-based count of rounds done) whose eval loss is at or below `target`; null if none. */
export function roundsToTarget(curve: readonly Pick<RoundPoint, "round" | "evalLoss">[], target: number) {
  return curve.find((p) => p.evalLoss <= target)?.round ?? null;
}

/**
 * The target is the eval loss the reference entry (FedKSeed) reaches at the end of its budget; without it in the
 * run (a subset was asked for), the worst final loss among the entries run, so roundsToTarget stays defined.
 */
export function chooseTarget(runs: readonly EntryRun[], reference: string): { target: number; from: string } {
  const finals = runs.map((r) => ({ name: r.name, loss: r.rounds.at(-1)?.evalLoss ?? r.initialEvalLoss }));
  const ref = finals.find((f) => f.name === reference);
  if (ref) return { target: ref.loss, from: `${reference} final eval loss` };
  const worst = finals.reduce((a, b) => (b.loss > a.loss ? b : a));
  return { target: worst.loss, from: `${reference} not run: worst final eval loss (${worst.name})` };
}

export function summarize(
  runs: readonly EntryRun[],
  reference: string,
  context: { settings: Record<string, unknown>; machine: Machine; basisCost?: Record<string, BasisCost> },
): ConvergenceResults {
  if (runs.length === 0) throw new RangeError("no entries were run; expected at least one");
  const { target, from } = chooseTarget(runs, reference);
  return {
    target,
    strategies: runs.map((run) => ({
      name: run.name,
      finalEvalLoss: run.rounds.at(-1)?.evalLoss ?? run.initialEvalLoss,
      roundsToTarget: roundsToTarget(run.rounds, target),
      uplinkBytesPerClientRound: Math.round(mean(run.rounds.map((r) => r.bytesUp))),
      downlinkBytesPerClientRound: Math.round(mean(run.rounds.map((r) => r.bytesDown))),
      localSecondsPerRound: median(run.rounds.map((r) => r.localSeconds)),
      aggregateSecondsPerRound: median(run.rounds.map((r) => r.aggregateSeconds)),
      curve: run.rounds,
    })),
    targetFrom: from,
    initialEvalLoss: runs[0]?.initialEvalLoss as number,
    basisCost: context.basisCost ?? {},
    settings: context.settings,
    machine: context.machine,
  };
}

function bytes(n: number): string {
  if (n < 10_000) return `${n} B`;
  if (n < 10_000_000) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(2)} MiB`;
}

/** The results as a markdown table, with uplink ratios against `baseline` (FedAvg) when it was run. */
export function markdownTable(results: ConvergenceResults, baseline = "fedavg"): string {
  const base = results.strategies.find((s) => s.name === baseline);
  const header = [
    "| strategy | final eval loss | rounds to target | uplink / client-round | downlink / client-round | local s / round | aggregate s / round |",
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  const rows = results.strategies.map((s) => {
    const ratio =
      base && s !== base
        ? ` (${(base.uplinkBytesPerClientRound / s.uplinkBytesPerClientRound).toFixed(0)}× less)`
        : "";
    const lossGap =
      base && s !== base
        ? ` (${((100 * (s.finalEvalLoss - base.finalEvalLoss)) / base.finalEvalLoss).toFixed(2)}%)`
        : "";
    return `| ${s.name} | ${s.finalEvalLoss.toFixed(4)}${lossGap} | ${s.roundsToTarget ?? "never"} | ${bytes(s.uplinkBytesPerClientRound)}${ratio} | ${bytes(s.downlinkBytesPerClientRound)} | ${s.localSecondsPerRound.toFixed(2)} | ${s.aggregateSecondsPerRound.toFixed(2)} |`;
  });
  return [
    `Target eval loss ${results.target.toFixed(4)} (${results.targetFrom}); base model ${results.initialEvalLoss.toFixed(4)}.`,
    "",
    ...header,
    ...rows,
    "",
  ].join("\n");
}

const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#ff7f0e", "#8c564b", "#e377c2"];

/** Eval loss against rounds, one line per entry from the base model's loss at round 0, and the target. */
export function convergenceSvg(results: ConvergenceResults): string {
  const rounds = Math.max(1, ...results.strategies.map((s) => s.curve.at(-1)?.round ?? 0));
  return lineChart(
    "global eval loss by round",
    [
      ...results.strategies.map((s, i) => ({
        name: s.name,
        color: COLORS[i % COLORS.length] as string,
        points: [
          [0, results.initialEvalLoss] as [number, number],
          ...s.curve.map((p): [number, number] => [p.round, p.evalLoss]),
        ],
      })),
      {
        name: "target",
        color: "#777",
        dashed: true,
        points: [
          [0, results.target],
          [rounds, results.target],
        ],
      },
    ],
    { width: 720, height: 360, fromZero: false },
  );
}

/**
 * Issue 6's goals, per Ferret entry, as markdown lines: final eval loss within 3% of FedAvg's, the target in at
 * least 3× fewer rounds than FedKSeed, and an uplink at least 1000× smaller than FedAvg's. A goal whose
 * reference entry was not run is left out.
 */
export function goalLines(results: ConvergenceResults): string[] {
  const find = (name: string) => results.strategies.find((s) => s.name === name);
  const fedavg = find("fedavg");
  const fedkseed = find("fedkseed");
  const verdict = (met: boolean) => (met ? "met" : "**not met**");
  return results.strategies
    .filter((s) => s.name.startsWith("ferret"))
    .flatMap((s) => {
      const lines: string[] = [];
      if (fedavg) {
        const gap = (s.finalEvalLoss - fedavg.finalEvalLoss) / fedavg.finalEvalLoss;
        const gained = results.initialEvalLoss - fedavg.finalEvalLoss;
        const share = gained > 0 ? (results.initialEvalLoss - s.finalEvalLoss) / gained : Number.NaN;
        lines.push(
          `${s.name}: final eval loss ${(100 * gap).toFixed(2)}% from FedAvg's (goal ≤ 3%): ${verdict(gap <= 0.03)}; ` +
            `it gains ${(100 * share).toFixed(0)}% of FedAvg's improvement over the base model`,
        );
        const ratio = fedavg.uplinkBytesPerClientRound / s.uplinkBytesPerClientRound;
        lines.push(
          `${s.name}: uplink ${ratio.toFixed(0)}× smaller than FedAvg's (goal ≥ 1000×): ${verdict(ratio >= 1000)}`,
        );
      }
      if (fedkseed?.roundsToTarget) {
        const ratio = s.roundsToTarget === null ? 0 : fedkseed.roundsToTarget / s.roundsToTarget;
        lines.push(
          `${s.name}: target in ${s.roundsToTarget ?? "no"} round(s) against FedKSeed's ${fedkseed.roundsToTarget}, ` +
            `${ratio.toFixed(1)}× fewer (goal ≥ 3×): ${verdict(ratio >= 3)}`,
        );
      }
      return lines.map((line) => `- ${line}`);
    });
}

function costLines(results: ConvergenceResults): string[] {
  const costs = Object.entries(results.basisCost);
  if (costs.length === 0) return [];
  const ms = (seconds: number) => `${(1000 * seconds).toFixed(1)} ms`;
  return [
    "## Basis cost at this K (core kernels, one thread)",
    "",
    ...costs.map(
      ([family, c]) =>
        `- ${family}: project Δ ${ms(c.projectSeconds)}, reconstruct ${ms(c.reconstructSeconds)}`,
    ),
    "",
  ];
}

/** convergence.md: the table, the goals, the machine and the settings that produced them. */
export function markdownReport(results: ConvergenceResults): string {
  const m = results.machine;
  const goals = goalLines(results);
  return [
    "# Convergence benchmark (`npm run bench:convergence`)",
    "",
    markdownTable(results),
    ...(goals.length > 0 ? ["## Issue 6's goals", "", ...goals, ""] : []),
    ...costLines(results),
    "## Machine and settings",
    "",
    `${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, Node ${m.node} ${m.platform}/${m.arch}; ` +
      `load average ${m.loadAverage.map((l) => l.toFixed(2)).join(" / ")} (1/5/15 min) at the end of the run.`,
    "",
    `\`${JSON.stringify(results.settings)}\``,
    "",
  ].join("\n");
}

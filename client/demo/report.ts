// The demo's report/: one JSON file per round, a summary, and an HTML page with inline SVG plots (no scripts, no
// network), readable from a CI artifact or a laptop.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface RoundRecord {
  round: number;
  /** Mean eval loss over clients of the checkpoint this round produced (round + 1). */
  evalLoss: number;
  evalLossByClient: Record<string, number>;
  /** Mean over participating clients of the bytes each sent and received for the round. */
  bytesUpPerClient: number;
  bytesDownPerClient: number;
  /** What FedAvg would move per client per round: the full float32 model each way. */
  fullModelBytes: number;
  seconds: number;
  trainLoss: number;
  clients: number;
}

export interface DemoSummary {
  machine: { cpus: number; platform: string; node: string };
  model: { dir: string; parameters: number; config: object };
  run: { runId: string; basis: string; totalK: number; blocks: number; localSteps: number; globalLr: number };
  clients: { name: string; examples: number; chars: number }[];
  initialEvalLoss: number;
  rounds: RoundRecord[];
}

const PAD = { left: 64, right: 16, top: 28, bottom: 36 };
const LEGEND_ENTRY_WIDTH = 150;

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string,
  );
}

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** A reference line: dashed, without point markers. */
  dashed?: boolean;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  /** Start the y axis at 0 (default) or at the lowest value, for curves that differ by little. */
  fromZero?: boolean;
}

/** One line chart: x = round, one polyline per series, axes with min/max labels; the legend wraps. */
export function lineChart(title: string, series: Series[], options: ChartOptions = {}) {
  const { width = 460, height = 220, fromZero = true } = options;
  const perRow = Math.max(1, Math.floor((width - PAD.left) / LEGEND_ENTRY_WIDTH));
  // Legend rows sit between the title and the plot.
  const top = PAD.top + 14 * Math.ceil(series.length / perRow);
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const low = Math.min(...ys);
  const high = Math.max(...ys);
  const [y0, y1] = fromZero
    ? [Math.min(0, low), high * 1.05 || 1]
    : [low - 0.05 * (high - low || 1), high + 0.05 * (high - low || 1)];
  const sx = (x: number) => PAD.left + ((x - x0) / (x1 - x0)) * (width - PAD.left - PAD.right);
  const sy = (y: number) => height - PAD.bottom - ((y - y0) / (y1 - y0)) * (height - top - PAD.bottom);
  const lines = series.map(
    (s) =>
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""} points="${s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ")}"/>` +
      (s.dashed
        ? ""
        : s.points
            .map(
              ([x, y]) =>
                `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`,
            )
            .join("")),
  );
  const legend = series.map(
    (s, i) =>
      `<text x="${PAD.left + 8 + (i % perRow) * LEGEND_ENTRY_WIDTH}" y="${PAD.top + 4 + 14 * Math.floor(i / perRow)}" fill="${s.color}" font-size="12">${s.dashed ? "- -" : "■"} ${escapeHtml(s.name)}</text>`,
  );
  const label = (y: number) =>
    Math.abs(y) >= 1000 ? y.toExponential(1) : y.toFixed(fromZero || y1 - y0 >= 1 ? 2 : 3);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(title)}">
<text x="${width / 2}" y="14" text-anchor="middle" font-size="13" font-weight="bold">${escapeHtml(title)}</text>
<line x1="${PAD.left}" y1="${height - PAD.bottom}" x2="${width - PAD.right}" y2="${height - PAD.bottom}" stroke="#444"/>
<line x1="${PAD.left}" y1="${top}" x2="${PAD.left}" y2="${height - PAD.bottom}" stroke="#444"/>
<text x="${PAD.left - 6}" y="${sy(y1) + 4}" text-anchor="end" font-size="11">${label(y1)}</text>
<text x="${PAD.left - 6}" y="${sy(y0) + 4}" text-anchor="end" font-size="11">${label(y0)}</text>
<text x="${sx(x0)}" y="${height - PAD.bottom + 16}" text-anchor="middle" font-size="11">${x0}</text>
<text x="${sx(x1)}" y="${height - PAD.bottom + 16}" text-anchor="middle" font-size="11">${x1}</text>
<text x="${width / 2}" y="${height - 6}" text-anchor="middle" font-size="11">round</text>
${legend.join("\n")}
${lines.join("\n")}
</svg>`;
}

export function reportHtml(summary: DemoSummary): string {
  const rounds = summary.rounds;
  const loss = lineChart("eval loss of the global model (mean over clients)", [
    {
      name: "eval loss",
      color: "#1f77b4",
      points: [
        [0, summary.initialEvalLoss],
        ...rounds.map((r): [number, number] => [r.round + 1, r.evalLoss]),
      ],
    },
  ]);
  const bytes = lineChart("KiB per client per round", [
    {
      name: "up (Ferret)",
      color: "#2ca02c",
      points: rounds.map((r) => [r.round, r.bytesUpPerClient / 1024]),
    },
    {
      name: "down (Ferret)",
      color: "#ff7f0e",
      points: rounds.map((r) => [r.round, r.bytesDownPerClient / 1024]),
    },
    { name: "full model", color: "#999", points: rounds.map((r) => [r.round, r.fullModelBytes / 1024]) },
  ]);
  const time = lineChart("round time (s)", [
    { name: "seconds", color: "#d62728", points: rounds.map((r) => [r.round, r.seconds]) },
  ]);
  const rows = rounds
    .map(
      (r) =>
        `<tr><td>${r.round}</td><td>${r.evalLoss.toFixed(4)}</td><td>${r.trainLoss.toFixed(4)}</td><td>${r.bytesUpPerClient}</td><td>${r.bytesDownPerClient}</td><td>${r.seconds.toFixed(1)}</td></tr>`,
    )
    .join("\n");
  const clients = summary.clients
    .map((c) => `<li>${escapeHtml(c.name)}: ${c.examples} examples, ${c.chars} characters</li>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferret demo report</title>
<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
.charts{display:flex;flex-wrap:wrap;gap:16px}</style></head><body>
<h1>Ferret demo: federated fine-tuning on State of the Union addresses</h1>
<p>Run <code>${escapeHtml(summary.run.runId)}</code>: a ${summary.model.parameters}-parameter GPT-2-style model, basis
<b>${escapeHtml(summary.run.basis)}</b>, K = ${summary.run.totalK} coefficients in ${summary.run.blocks} blocks,
${summary.run.localSteps} local SGD steps per round, global learning rate ${summary.run.globalLr}.
Each client uploads ${4 * summary.run.totalK} bytes of coefficients per round, against ${rounds[0]?.fullModelBytes ?? 0}
bytes for a full float32 update.</p>
<p>Clients (one president each, a non-IID split):</p><ul>${clients}</ul>
<div class="charts">${loss}${bytes}${time}</div>
<table><thead><tr><th>round</th><th>eval loss after</th><th>train loss</th><th>bytes up / client</th><th>bytes down / client</th><th>seconds</th></tr></thead>
<tbody>${rows}</tbody></table>
<p>Machine: ${summary.machine.cpus} CPUs, ${escapeHtml(summary.machine.platform)}, Node ${escapeHtml(summary.machine.node)}.</p>
</body></html>
`;
}

export async function writeReport(dir: string, summary: DemoSummary): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const round of summary.rounds) {
    await writeFile(join(dir, `round-${round.round}.json`), `${JSON.stringify(round, null, 2)}\n`);
  }
  await writeFile(join(dir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
  const page = join(dir, "index.html");
  await writeFile(page, reportHtml(summary));
  return page;
}

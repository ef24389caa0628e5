// `--chart FILE.svg`: a self-contained SVG of a report. One row per pairing: the case name,
// the two sides' median msgs/s as bars side by side (Deno and C, or the two Deno programs of
// a comparison), and the median ratio with the min-max of its pairs. The rate axis is
// logarithmic when the rates differ by two orders of magnitude or more, linear otherwise.
import type { BenchReport } from "./_report.ts";
import { formatRange, formatRatio } from "./_report.ts";

/** Escapes text for SVG content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function trimZeros(digits: string): string {
  return digits.includes(".") ? digits.replace(/\.?0+$/, "") : digits;
}

/** "12.3M", "456k", "789": a rate in a few characters. */
export function shortNumber(value: number): string {
  const units: [number, string][] = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [size, suffix] of units) {
    if (value >= size) return `${trimZeros((value / size).toPrecision(3))}${suffix}`;
  }
  return value >= 10 || value === 0 ? value.toFixed(0) : trimZeros(value.toPrecision(2));
}

/** Maps a rate to 0..1 along the axis, and gives the axis ticks. */
export interface Scale {
  kind: "log" | "linear";
  position(value: number): number;
  ticks: number[];
}

/** The axis for these rates: log when max/min >= 100, else linear from 0. */
export function rateScale(values: number[]): Scale {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  const max = Math.max(1, ...positive);
  const min = Math.min(max, ...positive);
  if (max / min >= 100) {
    const low = Math.floor(Math.log10(min));
    const high = Math.max(low + 1, Math.ceil(Math.log10(max)));
    const ticks = Array.from({ length: high - low + 1 }, (_, i) => 10 ** (low + i));
    return {
      kind: "log",
      position: (v) => Math.max(0, (Math.log10(Math.max(v, 10 ** low)) - low) / (high - low)),
      ticks,
    };
  }
  const magnitude = 10 ** Math.floor(Math.log10(max));
  const step = [1, 2, 5, 10].map((m) => m * magnitude / 2).find((s) => max / s <= 6) ?? magnitude;
  const top = Math.ceil(max / step) * step;
  const ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  return { kind: "linear", position: (v) => Math.max(0, v) / top, ticks };
}

const WIDTH = 1180;
const NAME_WIDTH = 400;
const BAR_WIDTH = 460;
const ROW = 34;
const BAR = 12;
const TOP = 96;

/** Renders `report` as an SVG document. */
export function renderChart(report: BenchReport): string {
  const results = report.results;
  const scale = rateScale(results.flatMap((r) => [r.a.rate, r.b.rate]));
  const headings = new Set(results.map((r) => r.kind)).size;
  const height = TOP + results.length * ROW + headings * ROW + 40;
  const x0 = NAME_WIDTH;
  const out: string[] = [];
  const machine = report.machine;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>deno-ipc benchmarks, ${escapeXml(report.startedAt)}</title>`,
    `<style>.a{fill:#2f6fbf}.b{fill:#9a9a9a}.noisy{fill:#c0392b}.tick{stroke:#ddd}` +
      `.name,.value,.ratio,.tick-label{fill:#222}</style>`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text class="heading" x="10" y="20" font-size="15">deno-ipc benchmarks: msgs/s, ` +
      `median of ${report.options.pairs} paired runs (${scale.kind} scale)</text>`,
    `<text class="machine" x="10" y="38">${
      escapeXml(
        `${machine.cpuModel}, ${machine.cores} cores, load ${
          machine.loadAverageBefore.join(" ")
        } before; Deno ${machine.deno}, gcc ${machine.gcc}; ` +
          (machine.pin ? `pinned to CPU ${machine.pin}` : "unpinned") + `; ${report.startedAt}`,
      )
    }</text>`,
    `<g class="legend"><rect class="a" x="10" y="50" width="12" height="12"/>` +
      `<text x="28" y="60">Deno (first line of the row)</text>` +
      `<rect class="b" x="230" y="50" width="12" height="12"/>` +
      `<text x="248" y="60">C, or the second Deno program</text>` +
      `<text x="${x0 + BAR_WIDTH + 110}" y="60">ratio (min-max of the pairs)</text></g>`,
  );
  const axisBottom = height - 30;
  out.push(`<g class="axis" data-scale="${scale.kind}">`);
  for (const tick of scale.ticks) {
    const x = (x0 + scale.position(tick) * BAR_WIDTH).toFixed(1);
    out.push(
      `<line class="tick" x1="${x}" y1="${TOP - 14}" x2="${x}" y2="${axisBottom}"/>`,
      `<text class="tick-label" x="${x}" y="${axisBottom + 14}" text-anchor="middle">${
        shortNumber(tick)
      }</text>`,
    );
  }
  out.push(`</g>`);
  let y = TOP;
  let kind = "";
  for (const result of results) {
    if (result.kind !== kind) {
      kind = result.kind;
      const title = kind === "deno-vs-c" ? "Deno against C" : "Deno against Deno";
      out.push(
        `<text class="section" x="10" y="${y + 4}" font-weight="bold">${title}</text>`,
      );
      y += ROW;
    }
    const noisy = result.ratio.noisy;
    out.push(
      `<g class="case" data-kind="${result.kind}" data-name="${escapeXml(result.name)}" ` +
        `data-ratio="${result.ratio.median}"${noisy ? ' data-noisy="true"' : ""}>`,
      `<text class="name" x="10" y="${y + BAR}">${escapeXml(result.name)}</text>`,
    );
    for (const [side, offset] of [["a", 0], ["b", BAR + 2]] as const) {
      const summary = result[side];
      const width = Math.max(1, scale.position(summary.rate) * BAR_WIDTH);
      const top = y + offset - 4;
      out.push(
        `<rect class="bar ${side}" x="${x0}" y="${top}" width="${width.toFixed(1)}" ` +
          `height="${BAR}" data-label="${escapeXml(summary.label)}" data-value="${summary.rate}"/>`,
        `<text class="value" x="${(x0 + width + 4).toFixed(1)}" y="${top + BAR - 2}">${
          escapeXml(`${summary.label} ${shortNumber(summary.rate)}`)
        }</text>`,
      );
    }
    const ratio = `${formatRatio(result.ratio.median)} (${formatRange(result.ratio)})` +
      (noisy ? " noisy" : "");
    out.push(
      `<text class="ratio${noisy ? " noisy" : ""}" x="${x0 + BAR_WIDTH + 110}" y="${y + BAR}">${
        escapeXml(ratio)
      }</text>`,
      `</g>`,
    );
    y += ROW;
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

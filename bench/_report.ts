// What a run prints and writes: the table (header with the machine facts, two lines per
// pairing, printed as each one is measured), the progress line on a terminal, the JSON
// report, and the comparison of two JSON reports.
import type { MachineFacts, PairedResult } from "./_runner.ts";
import { NOISY_SPREAD, shiftPValue } from "./_stats.ts";

/** The JSON file `--json FILE` writes (and `--compare` and `--chart --from` read). */
export interface BenchReport {
  format: "deno-ipc-bench/1";
  startedAt: string;
  /** Wall-clock seconds the whole run took. */
  seconds: number;
  machine: MachineFacts;
  options: {
    pairs: number;
    targetSeconds: number;
    capSeconds: number;
    quick: boolean;
    filter: string | null;
    /** Pairs a case still noisy after `pairs` got (absent in runs from before it existed). */
    maxPairs?: number;
    /** Passes over every case; `pairs` is their total per case (absent: one pass). */
    passes?: number;
  };
  /** Rows so far: after the last pass, one per case measured, on all its pairs. */
  results: PairedResult[];
  /** Passes complete when the file was written (absent in runs from before it existed). */
  passesDone?: number;
  /** Pairings that could not be measured (a program failed), with the error. */
  failures?: { name: string; error: string }[];
}

/** Formats a number with thousands separators; "-" for null. */
export function formatNumber(value: number | null, digits = 0): string {
  if (value === null || !Number.isFinite(value)) return "-";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A ratio as "0.38" (more digits below 0.1). */
export function ratioDigits(value: number): string {
  return value.toFixed(value < 0.1 ? 3 : 2);
}

/** A ratio as "0.38x". */
export function formatRatio(value: number): string {
  return `${ratioDigits(value)}x`;
}

/** The min-max of a ratio summary, as "0.35-0.41". */
export function formatRange(ratio: { min: number; max: number }): string {
  return `${ratioDigits(ratio.min)}-${ratioDigits(ratio.max)}`;
}

const cpus = (list: string) => (/^\d+$/.test(list) ? `CPU ${list}` : `CPUs ${list}`);

/** How `--pin` placed the two processes of every case, for the header. */
export function pinDescription(pin: string | null): string {
  if (pin === null) return "unpinned";
  const [self, peer] = pin.split("/");
  return peer === undefined
    ? `both processes pinned to ${cpus(self)}`
    : `measuring process on ${cpus(self)}, its peer on ${cpus(peer)}`;
}

/** The lines above the table: what ran where, with the machine facts. */
export function headerLines(
  machine: MachineFacts,
  options: BenchReport["options"],
  startedAt: string,
): string[] {
  const load = machine.loadAverageBefore.map((x) => x.toFixed(2)).join(" ");
  return [
    `deno-ipc benchmarks, ${startedAt}`,
    `machine: ${machine.cpuModel}, ${machine.cores} cores, load average ${load} before the run; ` +
    `${machine.kernel}, ${machine.target}`,
    `tools: Deno ${machine.deno} (V8 ${machine.v8}), gcc ${machine.gcc}`,
    `method: ${options.pairs} pairs of fresh process runs per case, order alternating ` +
    `(A B, B A, ...), after an uncounted pilot/warm-up; the faster side runs about ` +
    `${options.targetSeconds} s (the slower at most ${options.capSeconds} s)` +
    (options.passes && options.passes > 1
      ? `, spread over ${options.passes} passes over every case; `
      : options.maxPairs && options.maxPairs > options.pairs
      ? `, ${options.maxPairs} pairs for a case still noisy after ${options.pairs}; `
      : "; ") +
    pinDescription(machine.pin) +
    (options.quick ? "; quick run" : "") +
    (options.filter ? `; cases matching "${options.filter}"` : ""),
    `ratio = median of the per-pair ratios of msgs/s (min-max of the pairs next to it); ` +
    `"noisy" when max - min > ${NOISY_SPREAD * 100}% of the median`,
  ];
}

/** Column widths of the table, fixed before the first row so that rows can print at once. */
export interface TableLayout {
  name: number;
  impl: number;
}

const NUMBER_COLUMNS = [
  ["msgs/s", 13],
  ["MB/s", 8],
  ["p50 µs", 8],
  ["p99 µs", 8],
  ["ratio", 8],
  ["min-max", 13],
] as const;

/** The layout for these case names and side labels. */
export function tableLayout(names: string[], labels: string[]): TableLayout {
  return {
    name: Math.max(4, ...names.map((n) => n.length)),
    impl: Math.max(4, ...labels.map((l) => l.length)),
  };
}

function line(layout: TableLayout, cells: string[], note = ""): string {
  const numbers = NUMBER_COLUMNS.map(([, width], i) => cells[i + 2].padStart(width)).join(" ");
  return (`${cells[0].padEnd(layout.name)}  ${cells[1].padEnd(layout.impl)} ${numbers}` +
    (note ? `  ${note}` : "")).trimEnd();
}

/** The column titles and their underline. */
export function tableHead(layout: TableLayout): string[] {
  const titles = ["case", "impl", ...NUMBER_COLUMNS.map(([title]) => title)];
  const rule = [
    "-".repeat(layout.name),
    "-".repeat(layout.impl),
    ...NUMBER_COLUMNS.map(([, w]) => "-".repeat(w)),
  ];
  return [line(layout, titles), line(layout, rule)];
}

/** The two table lines of one pairing (side a with the ratio, then side b). */
export function resultLines(layout: TableLayout, result: PairedResult): string[] {
  const side = (s: PairedResult["a"]) => [
    formatNumber(s.rate),
    formatNumber(s.megabytesPerSecond),
    formatNumber(s.p50Us, 1),
    formatNumber(s.p99Us, 1),
  ];
  const { ratio } = result;
  const range = formatRange(ratio);
  return [
    line(
      layout,
      [result.name, result.a.label, ...side(result.a), formatRatio(ratio.median), range],
      ratio.noisy ? `noisy (spread ${(ratio.spread * 100).toFixed(0)}%)` : "",
    ),
    line(layout, ["", result.b.label, ...side(result.b), "", ""]),
  ];
}

/** The heading printed before the first Deno-against-Deno row. */
export function comparisonHeading(): string {
  return "Deno against Deno (ratio = first line's msgs/s / second line's, paired the same way):";
}

/** Where the progress reporter writes, and what it needs to know about it. */
export interface ProgressSink {
  write(text: string): void;
  /** A terminal gets a progress line redrawn in place; anything else gets plain lines. */
  isTerminal: boolean;
  /** Terminal width now (the progress line is cut to it). */
  columns(): number;
  /** Milliseconds, monotonic. */
  now(): number;
}

function clock(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const m = Math.floor(seconds / 60);
  return `${m}:${String(seconds % 60).padStart(2, "0")}`;
}

const CLEAR_LINE = "\r\x1b[2K";

/**
 * Prints table lines as they come and, on a terminal, one progress line below them:
 * case i of n, what it is doing, elapsed time and an estimate of the time left (from the
 * work units done so far). Off a terminal it writes the lines alone, with no control
 * characters.
 */
export class ProgressReporter {
  #sink: ProgressSink;
  #started: number;
  #totalUnits: number;
  #doneUnits = 0;
  #status = "";
  #shown = false;

  /** `totalUnits`: the work units of the whole run (see {@link ProgressReporter.advance}). */
  constructor(sink: ProgressSink, totalUnits: number) {
    this.#sink = sink;
    this.#started = sink.now();
    this.#totalUnits = totalUnits;
  }

  /** Prints finished lines (above the progress line on a terminal). */
  lines(lines: string[]): void {
    const clear = this.#shown ? CLEAR_LINE : "";
    this.#sink.write(clear + lines.map((l) => l + "\n").join(""));
    this.#shown = false;
    this.#draw();
  }

  /** Sets what is running now, e.g. case 3 of 49 and its step. */
  status(caseIndex: number, cases: number, name: string, step: string): void {
    this.#status = `[${caseIndex}/${cases}] ${name}: ${step}`;
    this.#draw();
  }

  /** Adds `units` to the whole run's work (a case that runs more pairs than planned). */
  grow(units: number): void {
    this.#totalUnits += units;
  }

  /** Records `units` more work units done (the estimate of the time left comes from them). */
  advance(units = 1): void {
    this.#doneUnits = Math.min(this.#totalUnits, this.#doneUnits + units);
  }

  /** The text of the progress line now. */
  progressText(): string {
    const elapsed = this.#sink.now() - this.#started;
    const left = this.#doneUnits === 0
      ? "estimating"
      : `about ${clock((elapsed / this.#doneUnits) * (this.#totalUnits - this.#doneUnits))} left`;
    return `${this.#status}  ${clock(elapsed)} elapsed, ${left}`;
  }

  /** Removes the progress line (at the end of the run). */
  finish(): void {
    if (this.#shown) this.#sink.write(CLEAR_LINE);
    this.#shown = false;
  }

  #draw(): void {
    if (!this.#sink.isTerminal || this.#status === "") return;
    const text = this.progressText().slice(0, Math.max(10, this.#sink.columns() - 1));
    this.#sink.write(CLEAR_LINE + text);
    this.#shown = true;
  }
}

/** A ratio that moved more than this between two runs is marked in `--compare`. */
export const COMPARE_TOLERANCE = 0.15;

/**
 * A marked row whose shift has a permutation p-value (see `shiftPValue`) under this moved
 * beyond what its pairs' spread explains.
 */
export const SHIFT_SIGNIFICANCE = 0.01;

/** Checks that `value` is a report this tool wrote; throws naming `file` otherwise. */
export function checkReport(value: unknown, file: string): BenchReport {
  const report = value as BenchReport;
  if (
    typeof value !== "object" || value === null || report.format !== "deno-ipc-bench/1" ||
    !Array.isArray(report.results)
  ) {
    throw new Error(`${file} is not a deno-ipc bench report (written by --json)`);
  }
  return report;
}

/**
 * Lines comparing two reports case by case: each run's median ratio, the change from the
 * first to the second, the permutation p-value of that change (how often the pairs'
 * spread alone moves a median this far), and a mark when it moved more than 15%, saying
 * whether the pairs' spread explains it; then a summary line.
 */
export function compareReports(first: BenchReport, second: BenchReport): string[] {
  const names = first.results.map((r) => r.name);
  const width = Math.max(4, ...names.map((n) => n.length));
  const out = [
    `A: ${first.startedAt}, load average ${first.machine.loadAverageBefore.join(" ")}`,
    `B: ${second.startedAt}, load average ${second.machine.loadAverageBefore.join(" ")}`,
    `${"case".padEnd(width)}  ${"A ratio".padStart(9)}  ${"B ratio".padStart(9)}  ${
      "B/A".padStart(8)
    }  ${"p".padStart(6)}`,
  ];
  let within = 0;
  let both = 0;
  const beyond: string[] = [];
  let shifted = 0;
  // Rows are matched by name and kind; rows only one run has are listed as such.
  for (const a of first.results) {
    const b = second.results.find((r) => r.name === a.name && r.kind === a.kind);
    if (!b) {
      out.push(`${a.name.padEnd(width)}  ${formatRatio(a.ratio.median).padStart(9)}  (not in B)`);
      continue;
    }
    both++;
    const change = b.ratio.median / a.ratio.median - 1;
    const ok = Math.abs(change) <= COMPARE_TOLERANCE;
    const p = shiftPValue(a.pairs.map((pair) => pair.ratio), b.pairs.map((pair) => pair.ratio));
    let mark = "";
    if (ok) within++;
    else {
      beyond.push(a.name);
      const real = p < SHIFT_SIGNIFICANCE;
      if (real) shifted++;
      mark = `  > ${COMPARE_TOLERANCE * 100}%`;
      // Without a p (too few pairs) nothing is said of the spread.
      if (!Number.isNaN(p)) mark += `, ${real ? "beyond" : "within"} the pairs' spread`;
    }
    const noisy = a.ratio.noisy || b.ratio.noisy ? " (noisy)" : "";
    out.push(
      `${a.name.padEnd(width)}  ${formatRatio(a.ratio.median).padStart(9)}  ` +
        `${formatRatio(b.ratio.median).padStart(9)}  ` +
        `${((change >= 0 ? "+" : "") + (change * 100).toFixed(1) + "%").padStart(8)}  ` +
        `${(Number.isNaN(p) ? "-" : p.toFixed(3)).padStart(6)}${mark}${noisy}`,
    );
  }
  for (const b of second.results) {
    if (!first.results.some((r) => r.name === b.name && r.kind === b.kind)) {
      out.push(
        `${b.name.padEnd(width)}  ${"(not in A)".padStart(9)}  ${
          formatRatio(b.ratio.median).padStart(9)
        }`,
      );
    }
  }
  out.push(
    `${within} of ${both} rows in both runs have median ratios within ` +
      `${COMPARE_TOLERANCE * 100}% of each other` +
      (beyond.length > 0
        ? `; ${beyond.length} moved more (marked above), ${shifted} of them beyond what ` +
          `their pairs' spread explains (p < ${SHIFT_SIGNIFICANCE})`
        : ""),
  );
  const options = (r: BenchReport) => JSON.stringify({ ...r.options, filter: undefined });
  if (options(first) !== options(second) || first.machine.pin !== second.machine.pin) {
    out.push(
      `note: the runs were made with different options (A: ${options(first)}, pin ` +
        `${first.machine.pin}; B: ${options(second)}, pin ${second.machine.pin})`,
    );
  }
  return out;
}

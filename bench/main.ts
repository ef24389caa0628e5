// Benchmark harness: runs every case in bench/cases.ts as real processes, Deno against the
// project's C program (built here with gcc), in paired, interleaved repetitions, and the
// Deno-against-Deno comparisons the same way; prints each row as soon as it is measured.
//
//   deno task bench [--quick] [--case=TEXT] [--pairs=N] [--passes=P] [--max-pairs=N] [--target=SECONDS]
//                   [--pin=CPUS | --pin=SELF/PEER | --pin=none]
//                   [--json=FILE] [--chart=FILE.svg] [--list]
//   deno task bench --chart=FILE.svg --from=REPORT.json    (draw a saved run)
//   deno task bench --compare A.json B.json                (ratio changes between two runs)
//
// README.md ("Benchmarks") describes the method and every option.
import { parseArgs } from "node:util";
import { renderChart } from "./_chart.ts";
import {
  type BenchReport,
  checkReport,
  compareReports,
  comparisonHeading,
  headerLines,
  ProgressReporter,
  resultLines,
  tableHead,
  tableLayout,
} from "./_report.ts";
import {
  allowedCpus,
  casePairing,
  choosePin,
  comparisonPairing,
  extendIfNoisy,
  loadAverage,
  machineFacts,
  type PairedResult,
  type Pairing,
  type PairRecord,
  pairsInPass,
  parsePin,
  type PilotResult,
  type RunOptions,
  runPairs,
  runPilot,
  type StepListener,
  summarize,
} from "./_runner.ts";
import { benchCases, benchComparisons } from "./cases.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    quick: { type: "boolean", default: false },
    case: { type: "string" },
    pairs: { type: "string" },
    "max-pairs": { type: "string" },
    passes: { type: "string" },
    // The harness's earlier name for --pairs.
    repeat: { type: "string" },
    target: { type: "string" },
    pin: { type: "string" },
    // The harness's earlier name for --pin.
    taskset: { type: "string" },
    json: { type: "string" },
    chart: { type: "string" },
    from: { type: "string" },
    compare: { type: "boolean", default: false },
    list: { type: "boolean", default: false },
  },
});

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

function readReport(file: string): BenchReport {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    fail(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    return checkReport(JSON.parse(text), file);
  } catch (error) {
    fail((error as Error).message);
  }
}

function positiveNumber(text: string | undefined, fallback: number, option: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) fail(`--${option} must be a positive number`);
  return value;
}

function positiveInteger(text: string | undefined, fallback: number, option: string): number {
  const value = positiveNumber(text, fallback, option);
  if (!Number.isInteger(value)) fail(`--${option} must be a whole number of at least 1`);
  return value;
}

if (values.compare) {
  if (positionals.length !== 2) fail("usage: deno task bench --compare A.json B.json");
  const [a, b] = positionals.map(readReport);
  for (const line of compareReports(a, b)) console.log(line);
  Deno.exit(0);
}
if (positionals.length > 0) fail(`unexpected argument ${positionals[0]} (see bench/main.ts)`);

if (values.from) {
  if (!values.chart) fail("--from needs --chart=FILE.svg");
  Deno.writeTextFileSync(values.chart, renderChart(readReport(values.from)));
  console.log(`chart of ${values.from} written to ${values.chart}`);
  Deno.exit(0);
}

// Without --pin, each process of a case gets a CPU of its own (defaultPin); --pin=none
// leaves placement to the scheduler.
const pinOption = values.pin ?? values.taskset;
let pin = choosePin(pinOption, allowedCpus());
const quick = values.quick!;
// Pairs per case in all (quick runs 3, full runs 10), spread over passes: quick runs make
// one pass, full runs one pass per pair.
const pairs = positiveInteger(values.pairs ?? values.repeat, quick ? 3 : 10, "pairs");
const passes = positiveInteger(values.passes, quick ? 1 : pairs, "passes");
if (passes > pairs) fail(`--passes=${passes} is more than the ${pairs} pairs per case`);
const target = positiveNumber(values.target, quick ? 0.1 : 0.5, "target");
// With one pass, a case still noisy after its pairs gets up to --max-pairs (default
// 2 * pairs - 1; none in quick runs). Several passes give every case the same pairs.
const maxPairs = passes > 1 ? pairs : Math.max(
  pairs,
  positiveInteger(values["max-pairs"], quick ? pairs : 2 * pairs - 1, "max-pairs"),
);

const allCases = benchCases();
const filter = values.case ?? null;
const cases = allCases.filter((c) => filter === null || c.name.includes(filter));
const selected = new Set(cases.map((c) => c.name));
const comparisons = benchComparisons().filter((c) =>
  filter === null || c.name.includes(filter) || (selected.has(c.a) && selected.has(c.b))
);

if (values.list) {
  for (const c of cases) console.log(c.name);
  for (const c of comparisons) console.log(`${c.name}  (Deno against Deno)`);
  Deno.exit(0);
}
if (cases.length + comparisons.length === 0) fail(`no case matches "${filter}" (see --list)`);
if (pin !== null) {
  let placement: { self: string | null; peer: string | null };
  try {
    placement = parsePin(pin);
  } catch (error) {
    fail((error as Error).message);
  }
  for (const cpus of [placement.self, placement.peer]) {
    if (cpus === null) continue;
    const probe = await new Deno.Command("taskset", { args: ["-c", cpus, "true"] }).output()
      .catch(() => null);
    if (pinOption === undefined && !probe?.success) {
      console.error(
        probe === null
          ? "taskset (util-linux) is not on PATH: this run is unpinned"
          : `taskset cannot place a process on CPU ${cpus}: this run is unpinned`,
      );
      pin = null;
      break;
    }
    if (probe === null) fail("--pin needs taskset (util-linux) on PATH");
    if (!probe.success) fail(`taskset refused CPU list "${cpus}"`);
  }
}

const options: RunOptions = { pairs, maxPairs, durations: { target, cap: target * 4 }, pin };

// Build every C program first, so that compiler messages come before the table.
const pairings: Pairing[] = [
  ...await Promise.all(cases.map(casePairing)),
  ...comparisons.map((c) => comparisonPairing(c, allCases)),
];
const names = pairings.map((p) => p.name);
const labels = ["deno", "C", ...comparisons.flatMap((c) => [c.aLabel, c.bLabel])];

const measuring = new Map<string, { pilot: PilotResult; pairs: PairRecord[] }>();
const failed = new Set<string>();
const startedAt = new Date().toISOString().replace(/\.\d+Z$/, "Z");
const started = performance.now();
const report: BenchReport = {
  format: "deno-ipc-bench/1",
  startedAt,
  seconds: 0,
  machine: await machineFacts(pin),
  options: {
    pairs,
    passes,
    maxPairs,
    targetSeconds: target,
    capSeconds: target * 4,
    quick,
    filter,
  },
  results: [],
  passesDone: 0,
  failures: [],
};

// The rows so far: an interrupted run's JSON keeps every pair measured (passesDone says how
// many passes were complete).
function save(): void {
  report.results = pairings.flatMap((pairing) => {
    const state = measuring.get(pairing.name);
    return state && state.pairs.length > 0 && !failed.has(pairing.name)
      ? [summarize(pairing, state.pilot, state.pairs)]
      : [];
  });
  report.seconds = Math.round((performance.now() - started) / 100) / 10;
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
}

const encoder = new TextEncoder();
const isTerminal = Deno.stdout.isTerminal();
const progress = new ProgressReporter({
  write: (text) => Deno.stdout.writeSync(encoder.encode(text)),
  isTerminal,
  columns: () => {
    try {
      return Deno.consoleSize().columns || 80; // a new pseudo-terminal may say 0
    } catch {
      return 80;
    }
  },
  now: () => performance.now(),
}, pairings.length * (pairs + 1));

const layout = tableLayout(names, labels);
progress.lines([
  ...headerLines(report.machine, report.options, startedAt),
  "",
  ...tableHead(layout),
]);
// Pass after pass over every case: pass 1 runs each case's pilot and its first pairs, the
// later passes add pairs in the same order, and the rows come once the last pass is done.
// A case's pairs are thus spread over the whole run, so a state of the machine that lasts
// a few minutes lands on every case instead of on the few measured meanwhile.
for (let pass = 0; pass < passes; pass++) {
  const last = pass === passes - 1;
  for (const [i, pairing] of pairings.entries()) {
    const name = pairing.name;
    if (last && i === cases.length) progress.lines(["", comparisonHeading()]);
    if (failed.has(name)) continue;
    let planned = pairs;
    const onStep: StepListener = (step) => {
      if (step.phase === "pair" && step.of > planned) {
        progress.grow(step.of - planned);
        planned = step.of;
      }
      if (step.phase === "pair") progress.advance();
      const where = passes > 1 ? `pass ${pass + 1}/${passes}, ` : "";
      progress.status(
        i + 1,
        pairings.length,
        name,
        where +
          (step.phase === "pilot"
            ? `pilot ${step.index + 1}`
            : `pair ${step.index + 1}/${step.of}`),
      );
    };
    let result: PairedResult | undefined;
    try {
      let state = measuring.get(name);
      if (state === undefined) {
        state = { pilot: await runPilot(pairing, options, onStep), pairs: [] };
        measuring.set(name, state);
        progress.advance();
      }
      await runPairs(
        pairing,
        state.pilot.count,
        state.pairs,
        pairsInPass(pass, pairs, passes),
        options,
        onStep,
        planned,
      );
      if (last) {
        // One pass: a case still noisy after its pairs gets more (see RunOptions.maxPairs).
        if (passes === 1) {
          await extendIfNoisy(pairing, state.pilot.count, state.pairs, options, onStep);
        }
        result = summarize(pairing, state.pilot, state.pairs);
      }
    } catch (error) {
      failed.add(name);
      report.failures!.push({ name, error: (error as Error).message });
      progress.lines([`${name}  FAILED: ${(error as Error).message}`]);
      const state = measuring.get(name);
      progress.advance(pairs + 1 - (state ? 1 + state.pairs.length : 0));
      save();
      continue;
    }
    if (result !== undefined) progress.lines(resultLines(layout, result));
    save();
  }
  report.passesDone = pass + 1;
}
progress.finish();

report.machine.loadAverageAfter = loadAverage();
save();
const noisy = report.results.filter((r) => r.ratio.noisy).length;
console.log(
  `\n${report.results.length} row${
    report.results.length === 1 ? "" : "s"
  } measured in ${report.seconds} s, ${noisy} of them noisy; load average ` +
    `${report.machine.loadAverageAfter.join(" ")} after the run` +
    (values.json ? `; JSON in ${values.json}` : ""),
);
if (values.chart) {
  Deno.writeTextFileSync(values.chart, renderChart(report));
  console.log(`chart in ${values.chart}`);
}
if (report.failures!.length > 0) {
  console.error(
    `${report.failures!.length} failed: ${report.failures!.map((f) => f.name).join("; ")}`,
  );
  Deno.exit(1);
}

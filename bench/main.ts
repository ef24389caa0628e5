// Benchmark harness: runs every case in bench/cases.ts as two real processes, in Deno and
// in the project's C program (built here with gcc), and prints one table.
//
//   deno task bench [--quick] [--case=TEXT] [--taskset=CPUS] [--repeat=N]
//
// --taskset=0 runs both processes of every case on CPU 0 (needs `taskset`).
import { parseArgs } from "node:util";
import { type BenchResult } from "./_common.ts";
import { benchCases } from "./cases.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    case: { type: "string" },
    taskset: { type: "string" },
    repeat: { type: "string", default: "1" },
  },
});

const here = new URL(".", import.meta.url).pathname;
const buildDirectory = `${here}.build/`;

async function run(command: string[]): Promise<BenchResult> {
  const argv = values.taskset ? ["taskset", "-c", values.taskset, ...command] : command;
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (output.code !== 0) throw new Error(`${command.join(" ")} failed (exit ${output.code})`);
  return JSON.parse(text.split("\n").at(-1)!);
}

async function buildC(name: string): Promise<string> {
  const source = `${here}c/${name}.c`;
  const binary = `${buildDirectory}${name}`;
  await Deno.mkdir(buildDirectory, { recursive: true });
  const output = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", binary, source],
    stderr: "inherit",
  }).output().catch((error) => {
    throw new Error(`the C baselines need gcc on PATH: ${error.message}`);
  });
  if (output.code !== 0) throw new Error(`gcc failed on ${source}`);
  return binary;
}

async function best(command: string[]): Promise<BenchResult> {
  const results: BenchResult[] = [];
  for (let i = Number(values.repeat); i > 0; i--) results.push(await run(command));
  results.sort((a, b) => b.messages / b.seconds - a.messages / a.seconds);
  return results[Math.floor(results.length / 2)];
}

function format(value: number | null, digits = 0): string {
  if (value === null || !Number.isFinite(value)) return "-";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

const rows: string[][] = [];
const header = ["case", "impl", "msgs/s", "MB/s", "p50 µs", "p99 µs", "Deno/C msgs/s"];
for (const benchCase of benchCases(values.quick!)) {
  if (values.case && !benchCase.name.includes(values.case)) continue;
  const binary = await buildC(benchCase.c[0]);
  const deno = await best([
    Deno.execPath(),
    "run",
    "-A",
    here + benchCase.deno[0],
    ...benchCase.deno.slice(1),
  ]);
  const c = await best([binary, ...benchCase.c.slice(1)]);
  const rate = (r: BenchResult) => r.messages / r.seconds;
  const mbs = (r: BenchResult) => (r.bytes > 0 ? r.bytes / r.seconds / 1e6 : null);
  rows.push([
    benchCase.name,
    "deno",
    format(rate(deno)),
    format(mbs(deno)),
    format(deno.p50_us, 1),
    format(deno.p99_us, 1),
    `${(rate(deno) / rate(c)).toFixed(2)}x`,
  ]);
  rows.push([
    "",
    "C",
    format(rate(c)),
    format(mbs(c)),
    format(c.p50_us, 1),
    format(c.p99_us, 1),
    "",
  ]);
}

const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
const line = (cells: string[]) =>
  cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
console.log(
  `deno-ipc benchmarks: ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs` +
    (values.taskset ? `, both processes on CPU ${values.taskset}` : ", unpinned") +
    (values.quick ? ", quick run" : ""),
);
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const row of rows) console.log(line(row));

// Running paired repetitions: builds the C programs, starts each repetition as a fresh
// process (pair), runs a pilot that is also the warm-up, then the measured pairs in
// alternating order, and records the machine the run happened on.
import type { BenchResult } from "./_common.ts";
import type { BenchCase, BenchComparison } from "./cases.ts";
import {
  type Durations,
  median,
  nextPilotCount,
  type PairOrder,
  pairOrder,
  parseChildResult,
  pilotLongEnough,
  rate,
  type RatioSummary,
  scaleCount,
  summarizeRatios,
} from "./_stats.ts";

const here = new URL(".", import.meta.url).pathname;
const buildDirectory = `${here}.build/`;

/** One side of a pairing: a label and the command line for `n` messages. */
export interface Side {
  label: string;
  command: (n: number) => string[];
}

/** Two sides measured against each other; the ratio is side a's rate over side b's. */
export interface Pairing {
  kind: "deno-vs-c" | "deno-vs-deno";
  name: string;
  a: Side;
  b: Side;
  /** First pilot count. */
  count: number;
  step: number;
}

/** The medians of one side over the measured repetitions. */
export interface SideSummary {
  label: string;
  /** Median messages (or round trips) per second. */
  rate: number;
  /** Median MB/s (10^6 bytes), null when the case moves no payload. */
  megabytesPerSecond: number | null;
  p50Us: number | null;
  p99Us: number | null;
}

/** One measured pair. */
export interface PairRecord {
  order: PairOrder;
  a: BenchResult;
  b: BenchResult;
  /** rate(a) / rate(b) */
  ratio: number;
}

/** Everything measured for one pairing (an element of the JSON report's `results`). */
export interface PairedResult {
  kind: Pairing["kind"];
  name: string;
  /** Messages per repetition, both sides. */
  count: number;
  /** The command lines of the measured repetitions (to rerun one by hand). */
  commands: { a: string[]; b: string[] };
  /** The pilot runs (warm-ups, not counted): count and the result of each side. */
  pilot: { count: number; a: BenchResult; b: BenchResult }[];
  a: SideSummary;
  b: SideSummary;
  pairs: PairRecord[];
  ratio: RatioSummary;
}

/** How a run is made. */
export interface RunOptions {
  pairs: number;
  /**
   * Pairs a case whose ratios came out noisy after `pairs` gets in all (its median then
   * rests on more pairs); at most `pairs` means no extension.
   */
  maxPairs?: number;
  durations: Durations;
  /** `--pin`: a CPU list for both processes, SELF/PEER (see parsePin), or null (unpinned). */
  pin: string | null;
}

const built = new Map<string, Promise<string>>();

/** Compiles bench/c/NAME.c into bench/.build/NAME once per run; returns the binary's path. */
export function buildC(name: string): Promise<string> {
  let binary = built.get(name);
  if (!binary) {
    binary = compile(name);
    built.set(name, binary);
  }
  return binary;
}

async function compile(name: string): Promise<string> {
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

/** The Deno side of a case. */
export function denoSide(label: string, benchCase: BenchCase): Side {
  return {
    label,
    command: (n) => {
      const [script, ...args] = benchCase.deno(n);
      return [Deno.execPath(), "run", "-A", "--unstable-net", here + script, ...args];
    },
  };
}

/** The C side of a case (its binary must have been built with {@link buildC}). */
export function cSide(benchCase: BenchCase, binary: string): Side {
  return {
    label: "C",
    command: (n) => [binary, ...benchCase.c(n).slice(1)],
  };
}

/** The pairing of a case's Deno program against its C program. */
export async function casePairing(benchCase: BenchCase): Promise<Pairing> {
  const binary = await buildC(benchCase.c(benchCase.count)[0]);
  return {
    kind: "deno-vs-c",
    name: benchCase.name,
    a: denoSide("deno", benchCase),
    b: cSide(benchCase, binary),
    count: benchCase.count,
    step: benchCase.step ?? 1,
  };
}

/** The pairing of two cases' Deno programs; both run a's pilot count to start with. */
export function comparisonPairing(comparison: BenchComparison, cases: BenchCase[]): Pairing {
  const find = (name: string) => {
    const found = cases.find((c) => c.name === name);
    if (!found) throw new Error(`comparison "${comparison.name}" names no case "${name}"`);
    return found;
  };
  const a = find(comparison.a);
  const b = find(comparison.b);
  return {
    kind: "deno-vs-deno",
    name: comparison.name,
    a: denoSide(comparison.aLabel, a),
    b: denoSide(comparison.bLabel, b),
    count: a.count,
    step: Math.max(a.step ?? 1, b.step ?? 1),
  };
}

/**
 * Where `--pin` puts the two processes of a repetition: "CPUS" runs the measuring process
 * under `taskset -c CPUS` and its peer inherits the mask; "SELF/PEER" puts the measuring
 * process on SELF and moves its peer to PEER (bench/_common.ts, bench/c/common.h).
 */
export function parsePin(pin: string | null): { self: string | null; peer: string | null } {
  if (pin === null) return { self: null, peer: null };
  const [self, peer, ...rest] = pin.split("/");
  const cpuList = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
  if (rest.length > 0 || !cpuList.test(self) || (peer !== undefined && !cpuList.test(peer))) {
    throw new RangeError(
      `Invalid pin "${pin}": expected a CPU list (0, 2-3, 0,2) or SELF/PEER (0/1)`,
    );
  }
  if (peer !== undefined) {
    const selfCpus = new Set(parseCpuList(self));
    if (parseCpuList(peer).some((cpu) => selfCpus.has(cpu))) {
      throw new RangeError(
        `Invalid pin "${pin}": SELF and PEER share a CPU (for one CPU list, use --pin=CPUS)`,
      );
    }
  }
  return { self, peer: peer ?? null };
}

/** The CPU numbers of a kernel CPU list such as "0-3,6"; a RangeError for anything else. */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    const first = Number(match?.[1]);
    const last = match?.[2] === undefined ? first : Number(match[2]);
    if (!match || last < first || last - first > 4095) {
      throw new RangeError(`Invalid CPU list "${list}"`);
    }
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** The CPUs this process may run on (`Cpus_allowed_list` in /proc/self/status), or null. */
export function allowedCpus(): number[] | null {
  try {
    const line = Deno.readTextFileSync("/proc/self/status").split("\n")
      .find((l) => l.startsWith("Cpus_allowed_list:"));
    return line === undefined ? null : parseCpuList(line.slice(line.indexOf(":") + 1));
  } catch {
    return null;
  }
}

/**
 * The placement of a run without `--pin`: the measuring process on the first CPU this
 * process may use and its peer on the second ("SELF/PEER"), or unpinned (null) when fewer
 * than two are known. Unpinned, which CPU each process gets is a state of the scheduler that
 * lasts minutes and moves blocking round trips by up to 10x (README, "Pinning").
 */
export function defaultPin(allowed: number[] | null): string | null {
  return allowed !== null && allowed.length >= 2 ? `${allowed[0]}/${allowed[1]}` : null;
}

/** The placement of a run from its `--pin` option: "none" is unpinned, no option the default. */
export function choosePin(option: string | undefined, allowed: number[] | null): string | null {
  if (option === "none") return null;
  return option ?? defaultPin(allowed);
}

/** Runs one repetition (a fresh process, which starts its peer) and parses its result. */
export async function runOnce(command: string[], pin: string | null): Promise<BenchResult> {
  const { self, peer } = parsePin(pin);
  const argv = self ? ["taskset", "-c", self, ...command] : command;
  // The whole environment is given, so that a DENO_IPC_BENCH_PEER_CPUS of the harness's own
  // cannot place peers that this run leaves unpinned.
  const env = Deno.env.toObject();
  delete env.DENO_IPC_BENCH_PEER_CPUS;
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    clearEnv: true,
    env: { ...env, NO_COLOR: "1", ...(peer ? { DENO_IPC_BENCH_PEER_CPUS: peer } : {}) },
  }).output();
  const program = command.slice(command[0] === Deno.execPath() ? 3 : 0).join(" ");
  if (!output.success) throw new Error(`${program} failed (exit ${output.code})`);
  return parseChildResult(new TextDecoder().decode(output.stdout), program);
}

/** What a pairing reports while it runs (for the progress line). */
export type StepListener = (step: { phase: "pilot" | "pair"; index: number; of: number }) => void;

function summarizeSide(label: string, results: BenchResult[]): SideSummary {
  const latency = (pick: (r: BenchResult) => number | null) => {
    const values = results.map(pick).filter((v): v is number => v !== null);
    return values.length === 0 ? null : median(values);
  };
  const bytes = results.every((r) => r.bytes > 0);
  return {
    label,
    rate: median(results.map(rate)),
    megabytesPerSecond: bytes ? median(results.map((r) => r.bytes / r.seconds / 1e6)) : null,
    p50Us: latency((r) => r.p50_us),
    p99Us: latency((r) => r.p99_us),
  };
}

/** The pilot rounds a pairing runs at most before it settles for what it measured. */
const MAX_PILOT_ROUNDS = 4;

/** The pilot of a pairing: its uncounted runs and the message count they fixed. */
export interface PilotResult {
  pilot: PairedResult["pilot"];
  count: number;
}

/**
 * Pilot rounds (each side once; not counted, they are the warm-up) until a round lasts long
 * enough to scale from; returns them with the count every pair then runs.
 */
export async function runPilot(
  pairing: Pairing,
  options: RunOptions,
  onStep: StepListener = () => {},
): Promise<PilotResult> {
  const pilot: PairedResult["pilot"] = [];
  let n = pairing.count;
  let count = n;
  for (let round = 0; round < MAX_PILOT_ROUNDS; round++) {
    onStep({ phase: "pilot", index: round, of: MAX_PILOT_ROUNDS });
    const a = await runOnce(pairing.a.command(n), options.pin);
    const b = await runOnce(pairing.b.command(n), options.pin);
    pilot.push({ count: n, a, b });
    // Durations for n messages (the programs may report one fewer, e.g. after a first one
    // that starts the clock).
    const [fast, slow] = [a.seconds, b.seconds].sort((x, y) => x - y);
    count = scaleCount(n, fast, slow, options.durations, pairing.step);
    if (pilotLongEnough(fast, slow)) break;
    n = Math.min(nextPilotCount(n, fast, pairing.step), count);
    if (round === MAX_PILOT_ROUNDS - 2) n = count;
  }
  return { pilot, count };
}

/**
 * Runs `more` pairs of fresh repetitions at `count` and appends them to `pairs`; the order
 * alternates from where `pairs` left off (A B, B A, A B, ...).
 */
export async function runPairs(
  pairing: Pairing,
  count: number,
  pairs: PairRecord[],
  more: number,
  options: RunOptions,
  onStep: StepListener = () => {},
  of = pairs.length + more,
): Promise<void> {
  for (let k = 0; k < more; k++) {
    const index = pairs.length;
    const order = pairOrder(index + 1)[index];
    onStep({ phase: "pair", index, of });
    let a: BenchResult;
    let b: BenchResult;
    if (order === "ab") {
      a = await runOnce(pairing.a.command(count), options.pin);
      b = await runOnce(pairing.b.command(count), options.pin);
    } else {
      b = await runOnce(pairing.b.command(count), options.pin);
      a = await runOnce(pairing.a.command(count), options.pin);
    }
    pairs.push({ order, a, b, ratio: rate(a) / rate(b) });
  }
}

/**
 * How many of a case's `pairs` pass `pass` (0-based) of `passes` runs: as even a share as
 * whole pairs allow, the larger shares last (10 pairs in 3 passes: 3, 3, 4).
 */
export function pairsInPass(pass: number, pairs: number, passes: number): number {
  return Math.floor(((pass + 1) * pairs) / passes) - Math.floor((pass * pairs) / passes);
}

/** The result row of a pairing from its pilot and pairs. */
export function summarize(
  pairing: Pairing,
  { pilot, count }: PilotResult,
  pairs: PairRecord[],
): PairedResult {
  return {
    kind: pairing.kind,
    name: pairing.name,
    count,
    commands: { a: pairing.a.command(count), b: pairing.b.command(count) },
    pilot,
    a: summarizeSide(pairing.a.label, pairs.map((p) => p.a)),
    b: summarizeSide(pairing.b.label, pairs.map((p) => p.b)),
    pairs,
    ratio: summarizeRatios(pairs.map((p) => p.ratio)),
  };
}

/**
 * Measures a pairing in one go: its pilot, then `pairs` pairs, then (when they came out
 * noisy) more pairs up to `maxPairs`.
 */
export async function measure(
  pairing: Pairing,
  options: RunOptions,
  onStep: StepListener = () => {},
): Promise<PairedResult> {
  const pilot = await runPilot(pairing, options, onStep);
  const pairs: PairRecord[] = [];
  await runPairs(pairing, pilot.count, pairs, options.pairs, options, onStep);
  await extendIfNoisy(pairing, pilot.count, pairs, options, onStep);
  return summarize(pairing, pilot, pairs);
}

/**
 * Runs more pairs, up to `options.maxPairs` in all, when the ratios of `pairs` are noisy.
 * Decided once, after the planned pairs: extending until the spread looks narrow would
 * pick the stopping point by the outcome.
 */
export async function extendIfNoisy(
  pairing: Pairing,
  count: number,
  pairs: PairRecord[],
  options: RunOptions,
  onStep: StepListener = () => {},
): Promise<void> {
  const more = (options.maxPairs ?? 0) - pairs.length;
  if (more > 0 && summarizeRatios(pairs.map((p) => p.ratio)).noisy) {
    await runPairs(pairing, count, pairs, more, options, onStep);
  }
}

/** The machine a run happened on. */
export interface MachineFacts {
  cpuModel: string;
  cores: number;
  /** 1, 5 and 15 minute load averages read just before the run started. */
  loadAverageBefore: number[];
  /** ... and just after it ended. */
  loadAverageAfter: number[] | null;
  kernel: string;
  target: string;
  deno: string;
  v8: string;
  gcc: string;
  /** Where the processes of every case ran: as `--pin` (see parsePin), or null (unpinned). */
  pin: string | null;
}

/** The current 1, 5 and 15 minute load averages. */
export function loadAverage(): number[] {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(Number);
  } catch {
    return Deno.loadavg();
  }
}

function cpuModel(): string {
  try {
    const line = Deno.readTextFileSync("/proc/cpuinfo").split("\n")
      .find((l) => l.startsWith("model name"));
    return line?.split(":")[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

async function gccVersion(): Promise<string> {
  try {
    const output = await new Deno.Command("gcc", { args: ["-dumpfullversion"] }).output();
    return new TextDecoder().decode(output.stdout).trim() || "unknown";
  } catch {
    return "not found";
  }
}

/** CPU, cores, load average now, kernel, Deno and gcc versions, and the pinning. */
export async function machineFacts(pin: string | null): Promise<MachineFacts> {
  return {
    cpuModel: cpuModel(),
    cores: navigator.hardwareConcurrency,
    loadAverageBefore: loadAverage(),
    loadAverageAfter: null,
    kernel: Deno.osRelease(),
    target: Deno.build.target,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    gcc: await gccVersion(),
    pin,
  };
}

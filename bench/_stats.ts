// The arithmetic of paired benchmarks, kept free of I/O so the tests can pin it down:
// the order of each pair, the summary of per-pair ratios, the noisy flag, the message count
// a pilot run fixes, and the parsing of what a benchmark program prints.
import type { BenchResult } from "./_common.ts";

/** A case is noisy when its ratios spread (max - min) over more than this share of the median. */
export const NOISY_SPREAD = 0.25;

/** Which side runs first in a pair: "ab" = side A (Deno) then side B (C or the other Deno). */
export type PairOrder = "ab" | "ba";

/**
 * The run order of `pairs` pairs: A B, B A, A B, ... so that a drift of the machine during
 * a case lands on both sides alike instead of on one.
 */
export function pairOrder(pairs: number): PairOrder[] {
  return Array.from({ length: pairs }, (_, i) => (i % 2 === 0 ? "ab" : "ba"));
}

/** The quantile `q` (0..1) of `values`, interpolated linearly between ranks. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError("quantile of no values");
  const sorted = [...values].sort((x, y) => x - y);
  const at = (sorted.length - 1) * q;
  const below = Math.floor(at);
  const above = Math.ceil(at);
  return sorted[below] + (sorted[above] - sorted[below]) * (at - below);
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Median, extremes and quartiles of the per-pair ratios, and whether they are noisy. */
export interface RatioSummary {
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
  /** (max - min) / median */
  spread: number;
  /** spread > NOISY_SPREAD */
  noisy: boolean;
}

/** Summarises per-pair ratios. */
export function summarizeRatios(ratios: readonly number[]): RatioSummary {
  const mid = median(ratios);
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  const spread = (max - min) / mid;
  return {
    median: mid,
    min,
    max,
    q1: quantile(ratios, 0.25),
    q3: quantile(ratios, 0.75),
    spread,
    noisy: spread > NOISY_SPREAD,
  };
}

/**
 * How often two runs whose pairs all came from one distribution would have median ratios
 * at least as far apart as `a` and `b` have: a permutation test on the logarithms of the
 * pair ratios (the pairs of both runs pooled, shuffled and split again, `permutations`
 * times). A small value says the ratio moved more than the pairs' own spread explains:
 * the machine, or the code, changed between the runs. The shuffles come from a seeded
 * generator, so a comparison prints the same value every time. `NaN` without at least two
 * positive ratios on each side.
 */
export function shiftPValue(
  a: readonly number[],
  b: readonly number[],
  permutations = 2000,
  seed = 1,
): number {
  const logs = (ratios: readonly number[]) =>
    ratios.filter((r) => r > 0 && Number.isFinite(r)).map(Math.log);
  const left = logs(a);
  const right = logs(b);
  if (left.length < 2 || right.length < 2) return NaN;
  const distance = (x: readonly number[], y: readonly number[]) => Math.abs(median(x) - median(y));
  // A shuffle may split off the very same medians: count ties as at least as far apart.
  const observed = distance(left, right) - 1e-12;
  const pooled = [...left, ...right];
  const random = mulberry32(seed);
  let asFar = 0;
  for (let i = 0; i < permutations; i++) {
    for (let j = pooled.length - 1; j > 0; j--) {
      const k = Math.floor(random() * (j + 1));
      [pooled[j], pooled[k]] = [pooled[k], pooled[j]];
    }
    if (distance(pooled.slice(0, left.length), pooled.slice(left.length)) >= observed) asFar++;
  }
  return (asFar + 1) / (permutations + 1);
}

// A small seeded generator of uniform numbers in [0, 1) (mulberry32).
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Messages (or round trips) per second of one repetition. */
export function rate(result: BenchResult): number {
  return result.messages / result.seconds;
}

/** How long repetitions should last. */
export interface Durations {
  /** The faster side of a pair should run at least this long (seconds). */
  target: number;
  /** ... unless the slower side would then run longer than this (seconds). */
  cap: number;
}

/**
 * The message count both sides of a case run, from a pilot run of `count` messages that
 * took `fast` and `slow` seconds on its two sides (in either order): long enough that the
 * faster side runs `target` seconds, short enough that the slower one stays under `cap`
 * (when the two differ by more than cap/target, the cap wins). Rounded up to a multiple of
 * `step`, and never below `step`.
 */
export function scaleCount(
  count: number,
  fast: number,
  slow: number,
  durations: Durations,
  step = 1,
): number {
  const perMessageFast = Math.max(Math.min(fast, slow), 1e-9) / count;
  const perMessageSlow = Math.max(slow, fast, 1e-9) / count;
  const wanted = Math.min(durations.target / perMessageFast, durations.cap / perMessageSlow);
  return Math.max(step, Math.ceil(wanted / step) * step);
}

/**
 * Whether a pilot of the given durations measured long enough to scale from: the faster side
 * ran a tenth of a second, or the slower one half a second.
 */
export function pilotLongEnough(fast: number, slow: number): boolean {
  return fast >= 0.1 || slow >= 0.5;
}

/** The next pilot count when the last one ran too briefly (at most 100 times more). */
export function nextPilotCount(count: number, fast: number, step = 1): number {
  const factor = Math.min(100, Math.max(2, 0.2 / Math.max(fast, 1e-6)));
  return Math.ceil((count * factor) / step) * step;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/**
 * The result a benchmark program printed: its last non-empty stdout line, a JSON object with
 * the fields of {@link BenchResult}. Throws an Error naming `program` and quoting the line
 * when it is missing or malformed.
 */
export function parseChildResult(stdout: string, program: string): BenchResult {
  const line = stdout.split("\n").map((l) => l.trim()).filter((l) => l !== "").at(-1);
  if (line === undefined) throw new Error(`${program} printed no result`);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`${program} printed no JSON result: ${JSON.stringify(line.slice(0, 200))}`);
  }
  const fields = value as Record<string, unknown>;
  const latency = (x: unknown) => x === null || x === undefined || isCount(x);
  if (
    typeof value !== "object" || value === null || !isCount(fields.messages) ||
    fields.messages === 0 || !isCount(fields.bytes) || !isCount(fields.seconds) ||
    fields.seconds === 0 || !latency(fields.p50_us) || !latency(fields.p99_us)
  ) {
    throw new Error(`${program} printed a malformed result: ${line.slice(0, 200)}`);
  }
  return {
    messages: fields.messages as number,
    bytes: fields.bytes as number,
    seconds: fields.seconds as number,
    p50_us: (fields.p50_us ?? null) as number | null,
    p99_us: (fields.p99_us ?? null) as number | null,
  };
}

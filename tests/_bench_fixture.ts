// Made-up benchmark reports for the tests of the bench table, comparison and chart.
import type { BenchReport } from "../bench/_report.ts";
import type { PairedResult } from "../bench/_runner.ts";
import { summarizeRatios } from "../bench/_stats.ts";

/** A result whose side a ran at `aRate` and side b at `bRate` msgs/s in every pair. */
export function fakeResult(
  name: string,
  aRate: number,
  bRate: number,
  options: { kind?: PairedResult["kind"]; labels?: [string, string]; ratios?: number[] } = {},
): PairedResult {
  const ratios = options.ratios ?? [aRate / bRate];
  const [aLabel, bLabel] = options.labels ?? ["deno", "C"];
  const run = (r: number) => ({
    messages: r,
    bytes: r * 64,
    seconds: 1,
    p50_us: null,
    p99_us: null,
  });
  return {
    kind: options.kind ?? "deno-vs-c",
    name,
    count: 1000,
    commands: { a: ["deno", "run", "a.ts"], b: ["a"] },
    pilot: [{ count: 10, a: run(aRate), b: run(bRate) }],
    a: {
      label: aLabel,
      rate: aRate,
      megabytesPerSecond: aRate * 64 / 1e6,
      p50Us: null,
      p99Us: null,
    },
    b: { label: bLabel, rate: bRate, megabytesPerSecond: bRate * 64 / 1e6, p50Us: 2.5, p99Us: 9 },
    pairs: ratios.map((ratio, i) => ({
      order: i % 2 === 0 ? "ab" as const : "ba" as const,
      a: run(bRate * ratio),
      b: run(bRate),
      ratio,
    })),
    ratio: summarizeRatios(ratios),
  };
}

/** A report holding `results`. */
export function fakeReport(
  results: PairedResult[],
  startedAt = "2026-12-03T18:00:00Z",
): BenchReport {
  return {
    format: "deno-ipc-bench/1",
    startedAt,
    seconds: 12.5,
    machine: {
      cpuModel: "Test CPU <v2> & co",
      cores: 2,
      loadAverageBefore: [0.5, 0.25, 0.125],
      loadAverageAfter: [1, 0.5, 0.25],
      kernel: "6.1.0",
      target: "x86_64-unknown-linux-gnu",
      deno: "2.9.6",
      v8: "15.0",
      gcc: "12.2.0",
      pin: null,
    },
    options: { pairs: 5, targetSeconds: 0.5, capSeconds: 2, quick: false, filter: null },
    results,
    failures: [],
  };
}

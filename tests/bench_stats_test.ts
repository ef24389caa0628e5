// The arithmetic of the benchmark harness (bench/_stats.ts): pairing order, ratio
// statistics, the noisy flag, the count a pilot fixes, and parsing what a program prints.
// No timing is measured here.
import assert from "node:assert/strict";
import {
  median,
  nextPilotCount,
  NOISY_SPREAD,
  pairOrder,
  parseChildResult,
  pilotLongEnough,
  quantile,
  rate,
  scaleCount,
  shiftPValue,
  summarizeRatios,
} from "../bench/_stats.ts";

Deno.test("bench pairs alternate which side runs first: A B, B A, A B, ...", () => {
  assert.deepEqual(pairOrder(5), ["ab", "ba", "ab", "ba", "ab"]);
  assert.deepEqual(pairOrder(1), ["ab"]);
  assert.deepEqual(pairOrder(0), []);
  // Every side runs first in half the pairs (rounded up for the first side).
  for (let n = 1; n <= 12; n++) {
    const firsts = pairOrder(n).filter((o) => o === "ab").length;
    assert.equal(firsts, Math.ceil(n / 2));
  }
});

Deno.test("bench quantiles interpolate between ranks and ignore input order", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.25), 2);
  assert.equal(quantile([5, 1, 4, 2, 3], 0.75), 4);
  assert.equal(quantile([1, 2], 0.25), 1.25);
  assert.equal(quantile([7], 0.9), 7);
  assert.throws(() => median([]), RangeError);
  const values = [0.4, 0.1, 0.3];
  median(values);
  assert.deepEqual(values, [0.4, 0.1, 0.3], "the input is not sorted in place");
});

Deno.test("bench ratio summary: median with min, max and quartiles of the pairs", () => {
  const summary = summarizeRatios([0.5, 0.4, 0.45, 0.42, 0.48]);
  assert.equal(summary.median, 0.45);
  assert.equal(summary.min, 0.4);
  assert.equal(summary.max, 0.5);
  assert.equal(summary.q1, 0.42);
  assert.equal(summary.q3, 0.48);
  assert.ok(Math.abs(summary.spread - 0.1 / 0.45) < 1e-12);
});

Deno.test("bench flags a case noisy when its ratios spread over more than 25% of the median", () => {
  assert.equal(NOISY_SPREAD, 0.25);
  // spread = (max - min) / median
  assert.equal(summarizeRatios([1, 1.1, 1.2]).noisy, false); // 0.2 / 1.1
  assert.equal(summarizeRatios([0.75, 1, 1]).noisy, false); // exactly 0.25: not wider
  assert.equal(summarizeRatios([0.9, 1, 1.16]).noisy, true);
  // One wild pair is enough, even when the median does not move.
  assert.equal(summarizeRatios([2, 2, 2, 2, 3]).noisy, true);
  assert.equal(summarizeRatios([2, 2, 2, 2, 2]).noisy, false);
  // Relative to the median: the same absolute spread is noisy for small ratios only.
  assert.equal(summarizeRatios([0.1, 0.2, 0.3]).noisy, true);
  assert.equal(summarizeRatios([10.1, 10.2, 10.3]).noisy, false);
});

Deno.test("bench shift test: two runs of one spread are not called shifted, two apart are", () => {
  const steady = [1, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.08, 0.92, 1];
  const alike = [1.01, 0.97, 1.07, 0.93, 1, 1.04, 0.96, 1.09, 0.91, 1.03];
  assert.ok(shiftPValue(steady, alike) > 0.3, String(shiftPValue(steady, alike)));
  const higher = steady.map((r) => r * 1.3);
  const apart = shiftPValue(steady, higher);
  // Never zero: the observed split is one of the splits (p is at least 1 / (n + 1)).
  assert.ok(apart < 0.001 && apart >= 1 / 2001, String(apart));
  assert.ok(shiftPValue(higher, steady) < 0.001, "a shift down is a shift too");
  // Medians, not means: one wild pair does not make a run look shifted.
  const wild = [...steady.slice(0, 9), 100];
  assert.ok(shiftPValue(steady, wild) > 0.3, String(shiftPValue(steady, wild)));
  const ones = Array(10).fill(1);
  const someFaster = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2];
  assert.equal(shiftPValue(ones, someFaster), 1, "equal medians are not a shift");
  // Seeded: the same comparison prints the same value.
  assert.equal(shiftPValue(steady, higher), shiftPValue(steady, higher));
  assert.notEqual(shiftPValue(steady, alike, 2000, 1), shiftPValue(steady, alike, 2000, 2));
  // Too few usable ratios (non-positive ones are not ratios of two rates): no answer.
  assert.ok(Number.isNaN(shiftPValue([1], steady)));
  assert.ok(Number.isNaN(shiftPValue([1, 0, -1], steady)));
});

Deno.test("bench count after the pilot: the faster side runs the target, the slower stays under the cap", () => {
  const durations = { target: 0.5, cap: 2 };
  // 10,000 messages: 0.01 s fast, 0.02 s slow -> 500,000 make the faster side 0.5 s.
  assert.equal(scaleCount(10_000, 0.01, 0.02, durations), 500_000);
  // 30x apart: 0.5 s on the fast side would be 15 s on the slow one; the cap wins (2 s).
  assert.equal(scaleCount(10_000, 0.01, 0.3, durations), 66_667);
  // Order of the two durations does not matter, nor is the count ever below the step.
  assert.equal(scaleCount(10_000, 0.3, 0.01, durations), 66_667);
  assert.equal(scaleCount(10, 100, 100, durations, 64), 64);
  // Rounded up to a multiple of the step.
  assert.equal(scaleCount(1_000, 0.001, 0.001, durations, 256) % 256, 0);
  // A zero duration (a clock too coarse) does not divide by zero.
  assert.ok(Number.isFinite(scaleCount(10, 0, 0, durations)));
});

Deno.test("bench pilot: rounds grow until they measure long enough to scale from", () => {
  assert.equal(pilotLongEnough(0.1, 0.1), true);
  assert.equal(pilotLongEnough(0.01, 0.5), true);
  assert.equal(pilotLongEnough(0.05, 0.2), false);
  assert.equal(nextPilotCount(1_000, 0.001), 100_000); // at most 100x
  assert.equal(nextPilotCount(1_000, 0.05), 4_000); // aims at 0.2 s
  assert.equal(nextPilotCount(1_000, 0.15), 2_000); // at least 2x
  assert.equal(nextPilotCount(1_000, 0.15, 300) % 300, 0);
});

Deno.test("bench parses the last JSON line a program prints", () => {
  const result = parseChildResult(
    'warming up\n{"messages":1000,"bytes":64000,"seconds":0.5,"p50_us":1.5,"p99_us":null}\n\n',
    "ring.ts",
  );
  assert.deepEqual(result, {
    messages: 1000,
    bytes: 64000,
    seconds: 0.5,
    p50_us: 1.5,
    p99_us: null,
  });
  assert.equal(rate(result), 2000);
  // Latencies may be left out (they are null then).
  assert.deepEqual(
    parseChildResult('{"messages":1,"bytes":0,"seconds":1}', "x"),
    { messages: 1, bytes: 0, seconds: 1, p50_us: null, p99_us: null },
  );
});

Deno.test("bench rejects missing or malformed child results, naming the program", () => {
  const bad = [
    "",
    "\n \n",
    "not json",
    "[1,2]",
    "null",
    '{"messages":0,"bytes":0,"seconds":1}',
    '{"messages":10,"bytes":0,"seconds":0}',
    '{"messages":10,"bytes":-1,"seconds":1}',
    '{"messages":"10","bytes":0,"seconds":1}',
    '{"messages":10,"bytes":0,"seconds":1,"p50_us":"fast"}',
    '{"messages":1e999,"bytes":0,"seconds":1}',
    '{"bytes":0,"seconds":1}',
  ];
  for (const text of bad) {
    assert.throws(
      () => parseChildResult(text, "bench/.build/pipe throughput"),
      (error: Error) => error.message.startsWith("bench/.build/pipe throughput printed"),
      JSON.stringify(text),
    );
  }
});

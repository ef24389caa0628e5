// The paired runner (bench/_runner.ts) driven by two tiny stand-in programs (sh + awk) that
// report a fixed rate: the pilot rounds, the count they fix, the order of the sides within
// each pair, and the per-pair ratios. Nothing here is timed.
import assert from "node:assert/strict";
import { measure, type Pairing, runOnce, type Side } from "../bench/_runner.ts";

/** A side that appends its label to `log` and reports `rate` msgs/s for n messages. */
function fakeSide(label: string, rate: number, log: string): Side {
  const script = `echo ${label} >> '${log}'; awk -v n="$1" 'BEGIN { printf ` +
    `"noise first\\n{\\"messages\\":%d,\\"bytes\\":%d,\\"seconds\\":%.9f,\\"p50_us\\":null,` +
    `\\"p99_us\\":null}\\n", n, n * 64, n / ${rate} }'`;
  return { label, command: (n) => ["sh", "-c", script, "sh", String(n)] };
}

async function withLog(fn: (log: string) => Promise<void>): Promise<void> {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
  try {
    await fn(`${directory}/log`);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

Deno.test("bench runner: pilot rounds grow the count, then pairs alternate A B, B A, A B", async () => {
  await withLog(async (log) => {
    const pairing: Pairing = {
      kind: "deno-vs-c",
      name: "fake",
      a: fakeSide("a", 1e6, log),
      b: fakeSide("b", 2e6, log),
      count: 1000,
      step: 1,
    };
    const steps: string[] = [];
    const result = await measure(
      pairing,
      { pairs: 3, durations: { target: 0.5, cap: 2 }, pin: null },
      (step) => steps.push(`${step.phase} ${step.index + 1}/${step.of}`),
    );
    // 1,000 messages: 0.5 ms and 1 ms, too brief; 100,000 (100x at most): 50 and 100 ms,
    // still brief; 400,000 (aiming at 0.2 s): 0.2 s, enough. Then b, the faster side, runs
    // 0.5 s: 1,000,000 messages (a runs 1 s, under the 2 s cap).
    assert.deepEqual(result.pilot.map((p) => p.count), [1000, 100_000, 400_000]);
    assert.equal(result.count, 1_000_000);
    assert.deepEqual(steps, [
      "pilot 1/4",
      "pilot 2/4",
      "pilot 3/4",
      "pair 1/3",
      "pair 2/3",
      "pair 3/3",
    ]);
    const order = (await Deno.readTextFile(log)).trim().split("\n");
    assert.deepEqual(order, ["a", "b", "a", "b", "a", "b", "a", "b", "b", "a", "a", "b"]);
    assert.deepEqual(result.pairs.map((p) => p.order), ["ab", "ba", "ab"]);
    for (const pair of result.pairs) {
      assert.equal(pair.a.messages, 1_000_000);
      assert.equal(pair.b.messages, 1_000_000);
      assert.equal(pair.ratio, 0.5);
    }
    assert.equal(result.ratio.median, 0.5);
    assert.equal(result.ratio.noisy, false);
    assert.equal(result.a.rate, 1e6);
    assert.equal(result.b.rate, 2e6);
    assert.equal(result.a.megabytesPerSecond, 64);
    assert.equal(result.a.p50Us, null);
    assert.deepEqual(result.commands.a.slice(-1), ["1000000"]);
  });
});

Deno.test("bench runner: when the sides differ more than cap/target, the slower side's cap wins", async () => {
  await withLog(async (log) => {
    const result = await measure({
      kind: "deno-vs-deno",
      name: "far apart",
      a: fakeSide("slow", 1e4, log),
      b: fakeSide("fast", 1e6, log),
      count: 5000,
      step: 100,
    }, { pairs: 1, durations: { target: 0.5, cap: 2 }, pin: null });
    // 5,000 messages take 0.5 s on the slow side: long enough to scale from. The fast side
    // would need 500,000 for 0.5 s, which the slow side would run for 50 s: 20,000 (2 s).
    assert.deepEqual(result.pilot.map((p) => p.count), [5000]);
    assert.equal(result.count, 20_000);
    assert.equal(result.ratio.median, 0.01);
  });
});

Deno.test("bench runner: a program that fails is named in the error", async () => {
  await assert.rejects(
    runOnce(["sh", "-c", "echo '{\"messages\":1}'; exit 3"], null),
    /sh -c .* failed \(exit 3\)/,
  );
  await assert.rejects(
    runOnce(["sh", "-c", "echo done"], null),
    /sh -c echo done printed no JSON result/,
  );
});

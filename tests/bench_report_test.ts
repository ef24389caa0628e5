// What the bench prints and writes (bench/_report.ts, bench/main.ts): the table, the
// progress line on a terminal and plain lines elsewhere, the JSON report, and --compare.
// No timing is asserted: the one real run below checks the shape of what it produced.
import assert from "node:assert/strict";
import {
  checkReport,
  compareReports,
  headerLines,
  ProgressReporter,
  type ProgressSink,
  resultLines,
  tableHead,
  tableLayout,
} from "../bench/_report.ts";
import { allowedCpus, choosePin } from "../bench/_runner.ts";
import { fakeReport, fakeResult } from "./_bench_fixture.ts";
import { ipcTest } from "./_helpers.ts";

const main = new URL("../bench/main.ts", import.meta.url).pathname;

function fakeSink(isTerminal: boolean): ProgressSink & { output: string; clock: number } {
  const sink = {
    output: "",
    clock: 0,
    isTerminal,
    columns: () => 200,
    write(text: string) {
      sink.output += text;
    },
    now: () => sink.clock,
  };
  return sink;
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/;

Deno.test("bench progress off a terminal: only the lines, as they come, no control characters", () => {
  const sink = fakeSink(false);
  const progress = new ProgressReporter(sink, 12);
  progress.lines(["header"]);
  progress.status(1, 2, "ring 64 B one-way", "pilot 1");
  assert.equal(sink.output, "header\n", "a status alone prints nothing");
  progress.advance();
  progress.status(1, 2, "ring 64 B one-way", "pair 1/5");
  progress.lines(["row 1a", "row 1b"]);
  assert.equal(sink.output, "header\nrow 1a\nrow 1b\n", "rows appear as soon as they are given");
  progress.finish();
  assert.equal(sink.output, "header\nrow 1a\nrow 1b\n");
  assert.doesNotMatch(sink.output, CONTROL);
});

Deno.test("bench progress on a terminal: one line redrawn in place, rows printed above it", () => {
  const sink = fakeSink(true);
  const progress = new ProgressReporter(sink, 12);
  progress.lines(["header"]);
  assert.equal(sink.output, "header\n", "no progress line before a status is known");
  progress.status(3, 49, "ring 64 B one-way", "pilot 1");
  assert.equal(
    sink.output,
    "header\n\r\x1b[2K[3/49] ring 64 B one-way: pilot 1  0:00 elapsed, estimating",
  );
  sink.output = "";
  sink.clock = 30_000;
  progress.advance(3); // 3 of 12 units in 30 s: 90 s left
  progress.status(3, 49, "ring 64 B one-way", "pair 2/5");
  assert.equal(
    sink.output,
    "\r\x1b[2K[3/49] ring 64 B one-way: pair 2/5  0:30 elapsed, about 1:30 left",
  );
  sink.output = "";
  progress.lines(["row a", "row b"]);
  // The progress line is cleared, the rows written, and the progress line drawn again below.
  assert.equal(
    sink.output,
    "\r\x1b[2Krow a\nrow b\n\r\x1b[2K[3/49] ring 64 B one-way: pair 2/5  0:30 elapsed, about 1:30 left",
  );
  sink.output = "";
  progress.finish();
  assert.equal(sink.output, "\r\x1b[2K", "the progress line is removed at the end");
  sink.output = "";
  progress.finish();
  assert.equal(sink.output, "", "finish twice clears once");
});

Deno.test("bench progress line is cut to the terminal's width", () => {
  const sink = fakeSink(true);
  sink.columns = () => 40;
  const progress = new ProgressReporter(sink, 1);
  progress.status(1, 1, "a case with a very long name that goes on and on", "pair 1/5");
  const drawn = sink.output.replace("\r\x1b[2K", "");
  assert.equal(drawn.length, 39);
  assert.ok(!drawn.includes("\n"));
});

Deno.test("bench table: the header names the machine, each pairing is two aligned lines", () => {
  const report = fakeReport([]);
  const header = headerLines(report.machine, report.options, report.startedAt).join("\n");
  assert.match(
    header,
    /Test CPU <v2> & co, 2 cores, load average 0\.50 0\.25 0\.13 before the run/,
  );
  assert.match(header, /Deno 2\.9\.6 \(V8 15\.0\), gcc 12\.2\.0/);
  assert.match(header, /5 pairs/);
  assert.match(header, /unpinned/);
  const pinned = headerLines({ ...report.machine, pin: "0" }, report.options, "t").join("\n");
  assert.match(pinned, /both processes pinned to CPU 0/);
  const list = headerLines({ ...report.machine, pin: "2,3" }, report.options, "t").join("\n");
  assert.match(list, /both processes pinned to CPUs 2,3/);
  const apart = headerLines({ ...report.machine, pin: "0/1" }, {
    ...report.options,
    maxPairs: 9,
  }, "t").join("\n");
  assert.match(apart, /measuring process on CPU 0, its peer on CPU 1/);
  assert.match(apart, /9 pairs for a case still noisy after 5/);

  const noisy = fakeResult("pipe 64 B round trip", 20_000, 18_000, { ratios: [1.1, 1.6, 0.9] });
  const quiet = fakeResult("ring 64 B one-way", 8_000_000, 26_000_000, {
    ratios: [0.3, 0.31, 0.29],
  });
  const layout = tableLayout([noisy.name, quiet.name], ["deno", "C"]);
  const [titles, rule] = tableHead(layout);
  const [a, b] = resultLines(layout, quiet);
  assert.match(titles, /^case +impl +msgs\/s +MB\/s +p50 µs +p99 µs +ratio +min-max$/);
  assert.equal(a.length, titles.length, "the first line fills every column");
  assert.match(a, /^ring 64 B one-way +deno +8,000,000 +512 +- +- +0\.30x +0\.29-0\.31$/);
  assert.match(b, /^ +C +26,000,000 +1,664 +2\.5 +9\.0$/);
  assert.equal(rule.length, titles.length);
  const [n] = resultLines(layout, noisy);
  assert.match(n, /1\.10x +0\.90-1\.60 {2}noisy \(spread 64%\)$/);
  for (const line of [titles, rule, a, b, n]) assert.equal(line, line.trimEnd());
});

Deno.test("bench --compare lines: each case's two ratios, the change, and a mark past 15%", () => {
  const first = fakeReport([
    fakeResult("steady", 1, 2),
    fakeResult("moved", 1, 1),
    fakeResult("gone", 1, 1),
    fakeResult("mailbox / ring", 1, 2, { kind: "deno-vs-deno", labels: ["mailbox", "ring"] }),
  ]);
  const second = fakeReport([
    fakeResult("steady", 1.1, 2),
    fakeResult("moved", 0.8, 1, { ratios: [0.8, 0.6, 1] }),
    fakeResult("mailbox / ring", 0.6, 2, { kind: "deno-vs-deno", labels: ["mailbox", "ring"] }),
    fakeResult("new", 1, 1),
  ]);
  const lines = compareReports(first, second);
  const row = (name: string) => lines.find((l) => l.startsWith(name + " "))!;
  // One pair per run (fakeResult's default): too few for the shift test, so no p and
  // nothing said of the spread.
  assert.match(row("steady"), /0\.50x +0\.55x +\+10\.0% +-$/);
  assert.match(
    row("moved"),
    /1\.00x +0\.80x +-20\.0% +- {2}> 15% \(noisy\)$/,
  );
  assert.match(
    row("mailbox / ring"),
    /0\.50x +0\.30x +-40\.0% +- {2}> 15%$/,
  );
  assert.match(row("gone"), /\(not in B\)/);
  assert.match(row("new"), /\(not in A\)/);
  assert.equal(
    lines.at(-1),
    "1 of 3 rows in both runs have median ratios within 15% of each other; " +
      "2 moved more (marked above), 0 of them beyond what their pairs' spread explains " +
      "(p < 0.01)",
  );
  // Ten pairs a side, all of B's well above all of A's: beyond the spread, with its p.
  const steadyPairs = [1, 1.1, 0.9, 1.05, 0.95, 1.02, 0.98, 1.08, 0.92, 1];
  const shifted = compareReports(
    fakeReport([fakeResult("shifted", 1, 1, { ratios: steadyPairs })]),
    fakeReport([fakeResult("shifted", 1, 1, { ratios: steadyPairs.map((r) => r * 1.5) })]),
  );
  assert.match(
    shifted.find((l) => l.startsWith("shifted "))!,
    /1\.00x +1\.50x +\+50\.0% +0\.00\d {2}> 15%, beyond the pairs' spread$/,
  );
  assert.match(shifted.at(-1)!, /1 moved more \(marked above\), 1 of them beyond/);
  // Ten pairs a side from one wide spread: a median that moved 20% is within it.
  const wide = [0.6, 1.4, 0.7, 1.3, 0.8, 1.2, 0.9, 1.1, 1, 1];
  const wider = [0.6, 1.4, 0.7, 1.3, 1.2, 1.2, 0.9, 1.1, 1.3, 1.25];
  const drift = compareReports(
    fakeReport([fakeResult("wide", 1, 1, { ratios: wide })]),
    fakeReport([fakeResult("wide", 1, 1, { ratios: wider })]),
  );
  assert.match(
    drift.find((l) => l.startsWith("wide "))!,
    /> 15%, within the pairs' spread \(noisy\)$/,
  );
  const quick = fakeReport([fakeResult("steady", 1, 2)]);
  quick.options = { ...quick.options, quick: true, pairs: 3 };
  assert.match(
    compareReports(first, quick).at(-1)!,
    /^note: the runs were made with different options \(A: .*"pairs":5.*; B: .*"pairs":3/,
  );
});

Deno.test("bench reports are recognised by their format field", () => {
  const report = JSON.parse(JSON.stringify(fakeReport([fakeResult("x", 1, 2)])));
  assert.deepEqual(checkReport(report, "a.json"), report);
  for (const bad of [null, [], {}, { format: "other", results: [] }, { format: report.format }]) {
    assert.throws(() => checkReport(bad, "b.json"), /b\.json is not a deno-ipc bench report/);
  }
});

async function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", main, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("bench --compare A.json B.json prints the ratio changes of two saved runs", async () => {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
  try {
    await Deno.writeTextFile(
      `${directory}/a.json`,
      JSON.stringify(fakeReport([fakeResult("x", 1, 2)])),
    );
    await Deno.writeTextFile(
      `${directory}/b.json`,
      JSON.stringify(fakeReport([fakeResult("x", 1, 4)])),
    );
    const { code, stdout } = await runMain([
      "--compare",
      `${directory}/a.json`,
      `${directory}/b.json`,
    ]);
    assert.equal(code, 0);
    assert.match(stdout, /^x +0\.50x +0\.25x +-50\.0% +- {2}> 15%$/m);
    const broken = await runMain(["--compare", `${directory}/a.json`, `${directory}/missing.json`]);
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /cannot read .*missing\.json/);
    const chart = await runMain([`--chart=${directory}/c.svg`, `--from=${directory}/a.json`]);
    assert.equal(chart.code, 0);
    assert.match(
      await Deno.readTextFile(`${directory}/c.svg`),
      /<g class="case" data-kind="deno-vs-c" data-name="x"/,
    );
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

ipcTest(
  "bench run off a terminal: plain rows, a JSON report of the pairs, and a chart",
  async () => {
    const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
    try {
      const json = `${directory}/run.json`;
      const svg = `${directory}/run.svg`;
      const { code, stdout, stderr } = await runMain([
        "--case=ring 4 KiB",
        "--pairs=2",
        "--passes=1",
        "--max-pairs=2",
        "--target=0.02",
        `--json=${json}`,
        `--chart=${svg}`,
      ]);
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stdout, CONTROL, "no progress line when stdout is not a terminal");
      const lines = stdout.split("\n");
      assert.match(lines[0], /^deno-ipc benchmarks, \d{4}-\d\d-\d\dT/);
      assert.ok(
        lines.some((l) => /^machine: .+, \d+ cores, load average [\d. ]+ before the run/.test(l)),
      );
      assert.ok(
        lines.some((l) =>
          /^ring 4 KiB one-way +deno +[\d,]+ +[\d,]+ .* [\d.]+x +[\d.]+-[\d.]+/.test(l)
        ),
      );
      assert.ok(lines.some((l) => /^ +C +[\d,]+/.test(l)));

      const report = checkReport(JSON.parse(await Deno.readTextFile(json)), json);
      assert.equal(typeof report.machine.cpuModel, "string");
      assert.equal(report.machine.cores, navigator.hardwareConcurrency);
      assert.equal(report.machine.loadAverageBefore.length, 3);
      assert.equal(report.machine.loadAverageAfter?.length, 3);
      assert.equal(report.machine.deno, Deno.version.deno);
      assert.match(report.machine.gcc, /^\d+\./);
      // No --pin: each process on a CPU of its own when this process may use two.
      assert.equal(report.machine.pin, choosePin(undefined, allowedCpus()));
      assert.deepEqual(report.options, {
        pairs: 2,
        passes: 1,
        maxPairs: 2,
        targetSeconds: 0.02,
        capSeconds: 0.08,
        quick: false,
        filter: "ring 4 KiB",
      });
      assert.deepEqual(report.failures, []);
      assert.equal(report.passesDone, 1);
      assert.equal(report.results.length, 1);
      const [result] = report.results;
      assert.equal(result.kind, "deno-vs-c");
      assert.equal(result.name, "ring 4 KiB one-way");
      assert.deepEqual([result.a.label, result.b.label], ["deno", "C"]);
      assert.ok(result.pilot.length >= 1);
      assert.deepEqual(result.pairs.map((p) => p.order), ["ab", "ba"]);
      for (const pair of result.pairs) {
        // Both sides ran the fixed count (the ring reports all but the first message).
        assert.equal(pair.a.messages, pair.b.messages);
        assert.ok(pair.a.messages >= result.count - 1 && pair.a.messages <= result.count);
        assert.equal(
          pair.ratio,
          (pair.a.messages / pair.a.seconds) / (pair.b.messages / pair.b.seconds),
        );
      }
      const mean = (result.pairs[0].ratio + result.pairs[1].ratio) / 2;
      assert.ok(Math.abs(result.ratio.median - mean) <= 1e-12 * mean, "the median of two pairs");
      assert.equal(typeof result.ratio.noisy, "boolean");

      const chart = await Deno.readTextFile(svg);
      assert.equal([...chart.matchAll(/<g class="case"/g)].length, 1);
      assert.match(chart, /data-name="ring 4 KiB one-way"/);
    } finally {
      await Deno.remove(directory, { recursive: true });
    }
  },
);

async function hasScript(): Promise<boolean> {
  try {
    return (await new Deno.Command("script", { args: ["--version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

ipcTest("bench run on a terminal: a progress line redrawn in place, then the row", async (t) => {
  if (!await hasScript()) {
    console.warn("skipped: this test needs `script` (util-linux) to give the bench a terminal");
    return;
  }
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
  try {
    const log = `${directory}/typescript`;
    const command = [Deno.execPath(), "run", "-A", "--unstable-net", main, "--case=ring 4 KiB"]
      .concat(["--pairs=1", "--passes=1", "--target=0.02"])
      .map((word) => `'${word}'`).join(" ");
    // script(1) runs the command on a new pseudo-terminal and copies what it printed.
    const output = await new Deno.Command("script", {
      args: ["-qec", command, log],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", COLUMNS: "200", LINES: "40" },
    }).output();
    // Control characters made visible: "<CR><ESC>[2K" returns to the start and clears the line.
    const text = new TextDecoder().decode(output.stdout).replaceAll("\r", "<CR>")
      .replaceAll("\x1b", "<ESC>");
    assert.equal(output.code, 0, text + new TextDecoder().decode(output.stderr));
    await t.step("the progress line names the case and its step", () => {
      assert.match(text, /<CR><ESC>\[2K\[1\/1\] ring 4 KiB one-way: pilot 1 +\d+:\d\d elapsed, /);
      assert.match(text, /<CR><ESC>\[2K\[1\/1\] ring 4 KiB one-way: pair 1\/1 +\d+:\d\d elapsed, /);
    });
    await t.step("the row replaces the progress line, which is gone at the end", () => {
      assert.match(text, /<CR><ESC>\[2Kring 4 KiB one-way +deno +[\d,]+/);
      const beforeSummary = text.slice(0, text.indexOf("1 row measured in"));
      assert.ok(
        beforeSummary.endsWith("<CR><ESC>[2K<CR>\n"),
        JSON.stringify(beforeSummary.slice(-80)),
      );
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

ipcTest(
  "bench passes: each case gets its pairs in every pass, alternating on, rows after the last pass",
  async () => {
    const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
    try {
      const json = `${directory}/run.json`;
      const { code, stdout, stderr } = await runMain([
        "--case=ring 4 KiB",
        "--pairs=3",
        "--passes=3",
        "--target=0.02",
        `--json=${json}`,
      ]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /3 pairs of fresh process runs .* spread over 3 passes over every case/);
      const report = checkReport(JSON.parse(await Deno.readTextFile(json)), json);
      assert.equal(report.options.passes, 3);
      assert.equal(report.passesDone, 3);
      assert.equal(report.options.pairs, 3);
      const [result] = report.results;
      assert.deepEqual(result.pairs.map((p) => p.order), ["ab", "ba", "ab"]);
      assert.equal(result.pilot.length >= 1, true);
    } finally {
      await Deno.remove(directory, { recursive: true });
    }
  },
);

// The paired runner (bench/_runner.ts) driven by two tiny stand-in programs (sh + awk) that
// report a fixed rate: the pilot rounds, the count they fix, the order of the sides within
// each pair, and the per-pair ratios. Nothing here is timed.
import assert from "node:assert/strict";
import { peerCommand } from "../bench/_common.ts";
import {
  allowedCpus,
  choosePin,
  measure,
  type Pairing,
  pairsInPass,
  parseCpuList,
  parsePin,
  runOnce,
  type Side,
} from "../bench/_runner.ts";

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

/** A side whose rate doubles on every other run (the runs counted in `log`). */
function unsteadySide(label: string, rate: number, log: string): Side {
  const script = `echo ${label} >> '${log}'; k=$(wc -l < '${log}'); ` +
    `awk -v n="$1" -v k="$k" 'BEGIN { r = ${rate} * (k % 2 == 0 ? 2 : 1); printf ` +
    `"{\\"messages\\":%d,\\"bytes\\":%d,\\"seconds\\":%.9f,\\"p50_us\\":null,` +
    `\\"p99_us\\":null}\\n", n, n * 64, n / r }'`;
  return { label, command: (n) => ["sh", "-c", script, "sh", String(n)] };
}

Deno.test("bench runner: a case still noisy after its pairs gets maxPairs, a steady one does not", async () => {
  for (const [steady, expected] of [[true, 5], [false, 9]] as const) {
    await withLog(async (log) => {
      const pairing: Pairing = {
        kind: "deno-vs-c",
        name: "fake",
        a: steady ? fakeSide("a", 1e6, log) : unsteadySide("a", 1e6, log),
        b: fakeSide("b", 1e6, log),
        count: 1_000_000,
        step: 1,
      };
      const result = await measure(pairing, {
        pairs: 5,
        maxPairs: 9,
        durations: { target: 0.5, cap: 2 },
        pin: null,
      });
      assert.equal(result.pairs.length, expected);
      assert.deepEqual(
        result.pairs.map((p) => p.order),
        ["ab", "ba", "ab", "ba", "ab", "ba", "ab", "ba", "ab"].slice(0, expected),
      );
      assert.equal(result.ratio.noisy, !steady);
    });
  }
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

Deno.test("bench --pin: a CPU list for both processes, or SELF/PEER, anything else refused", () => {
  assert.deepEqual(parsePin(null), { self: null, peer: null });
  assert.deepEqual(parsePin("0"), { self: "0", peer: null });
  assert.deepEqual(parsePin("2-3,5"), { self: "2-3,5", peer: null });
  assert.deepEqual(parsePin("0/1"), { self: "0", peer: "1" });
  for (const bad of ["", "a", "0/", "/1", "0/1/2", "0;1", "-1"]) {
    assert.throws(() => parsePin(bad), RangeError, bad);
  }
  for (const shared of ["0/0", "0-1/1", "2/1-3"]) {
    assert.throws(() => parsePin(shared), /share a CPU/, shared);
  }
});

Deno.test("bench passes: a case's pairs are shared out over the passes, every pair once", () => {
  const shares = (pairs: number, passes: number) =>
    Array.from({ length: passes }, (_, pass) => pairsInPass(pass, pairs, passes));
  assert.deepEqual(shares(10, 10), Array(10).fill(1));
  assert.deepEqual(shares(10, 3), [3, 3, 4]);
  assert.deepEqual(shares(9, 3), [3, 3, 3]);
  assert.deepEqual(shares(5, 1), [5]);
  for (let pairs = 1; pairs <= 12; pairs++) {
    for (let passes = 1; passes <= pairs; passes++) {
      const each = shares(pairs, passes);
      assert.equal(each.reduce((a, b) => a + b), pairs, `${pairs} in ${passes}`);
      assert.ok(Math.max(...each) - Math.min(...each) <= 1, `${pairs} in ${passes}: even`);
    }
  }
});

Deno.test("bench CPU lists: ranges and single CPUs, anything else refused", () => {
  assert.deepEqual(parseCpuList("0-3,6"), [0, 1, 2, 3, 6]);
  assert.deepEqual(parseCpuList("1\n"), [1]);
  for (const bad of ["", "a", "3-1", "0,", "-1", "0-99999"]) {
    assert.throws(() => parseCpuList(bad), RangeError, bad);
  }
  const allowed = allowedCpus();
  assert.ok(allowed !== null && allowed.length >= 1, "this process may run somewhere");
});

Deno.test("bench placement: without --pin, each process on a CPU of its own; none unpins", () => {
  assert.equal(choosePin(undefined, [0, 1]), "0/1");
  assert.equal(choosePin(undefined, [2, 5, 7]), "2/5");
  assert.equal(choosePin(undefined, [3]), null, "one CPU: no placement to choose");
  assert.equal(choosePin(undefined, null), null, "CPUs unknown: unpinned");
  assert.equal(choosePin("none", [0, 1]), null);
  assert.equal(choosePin("0", [0, 1]), "0");
  assert.equal(choosePin("1/0", [0, 1]), "1/0");
});

// The side reports the CPUs it may run on and the CPUs it was told to give its peer.
const placementScript =
  `awk '/Cpus_allowed_list/ { printf "%s ", $2 }' /proc/self/status >> "$1"; ` +
  `echo "\${DENO_IPC_BENCH_PEER_CPUS:-unset}" >> "$1"; ` +
  `echo '{"messages":1,"bytes":1,"seconds":1,"p50_us":null,"p99_us":null}'`;

// Two CPUs this process may use (placement tests need two distinct ones), or null.
const twoCpus = (() => {
  const allowed = allowedCpus();
  return allowed !== null && allowed.length >= 2 ? allowed.slice(0, 2) : null;
})();

Deno.test({
  name: "bench --pin=SELF/PEER: the measuring process runs on SELF and passes PEER on",
  ignore: twoCpus === null,
  fn: async () => {
    const [self, peer] = twoCpus!;
    const variable = "DENO_IPC_BENCH_PEER_CPUS";
    const before = Deno.env.get(variable);
    // A peer list in the harness's own environment must not reach an unpinned or CPUS run.
    Deno.env.set(variable, String(peer));
    try {
      await withLog(async (log) => {
        const command = ["sh", "-c", placementScript, "sh", log];
        await runOnce(command, `${self}/${peer}`);
        await runOnce(command, `${peer}/${self}`);
        await runOnce(command, String(self));
        await runOnce(command, null);
        const lines = (await Deno.readTextFile(log)).trim().split("\n");
        assert.equal(lines[0], `${self} ${peer}`);
        assert.equal(lines[1], `${peer} ${self}`);
        assert.equal(lines[2], `${self} unset`); // the peer inherits the measuring process's CPUs
        assert.match(lines[3], / unset$/);
      });
    } finally {
      if (before === undefined) Deno.env.delete(variable);
      else Deno.env.set(variable, before);
    }
  },
});

Deno.test("bench peers: a Deno peer starts under taskset when the harness placed peers", () => {
  const variable = "DENO_IPC_BENCH_PEER_CPUS";
  const before = Deno.env.get(variable);
  try {
    Deno.env.delete(variable);
    assert.deepEqual(peerCommand(["run", "x.ts"]), [Deno.execPath(), ["run", "x.ts"]]);
    Deno.env.set(variable, "1");
    assert.deepEqual(peerCommand(["run", "x.ts"]), [
      "taskset",
      ["-c", "1", Deno.execPath(), "run", "x.ts"],
    ]);
  } finally {
    if (before === undefined) Deno.env.delete(variable);
    else Deno.env.set(variable, before);
  }
});

const hasGcc = (() => {
  try {
    return new Deno.Command("gcc", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "bench C baselines: bench_fork moves the child to DENO_IPC_BENCH_PEER_CPUS",
  ignore: !hasGcc || twoCpus === null,
  fn: async () => {
    const [self, peer] = twoCpus!;
    const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-bench-" });
    try {
      const header = new URL("../bench/c/common.h", import.meta.url).pathname;
      await Deno.writeTextFile(
        `${directory}/placed.c`,
        `#include "${header}"
#include <string.h>
#include <sys/wait.h>
static void show(const char *who) {
  char line[256];
  FILE *status = fopen("/proc/self/status", "r");
  while (fgets(line, sizeof line, status))
    if (strncmp(line, "Cpus_allowed_list:", 18) == 0) printf("%s %s", who, line + 18);
  fclose(status);
  fflush(stdout);
}
int main(void) {
  pid_t child = bench_fork();
  if (child == 0) { show("child"); _exit(0); }
  waitpid(child, NULL, 0);
  show("parent");
  return 0;
}
`,
      );
      const compiled = await new Deno.Command("gcc", {
        args: ["-O2", "-Wall", "-o", `${directory}/placed`, `${directory}/placed.c`],
      }).output();
      assert.ok(compiled.success, new TextDecoder().decode(compiled.stderr));
      const output = await new Deno.Command("taskset", {
        args: ["-c", String(self), `${directory}/placed`],
        env: { DENO_IPC_BENCH_PEER_CPUS: String(peer) },
      }).output();
      const text = new TextDecoder().decode(output.stdout).replace(/[ \t]+/g, " ");
      assert.match(text, new RegExp(`child ${peer}\n`));
      assert.match(text, new RegExp(`parent ${self}\n`));
      const unplaced = await new Deno.Command(`${directory}/placed`, {
        env: { DENO_IPC_BENCH_PEER_CPUS: "" },
      }).output();
      const lines = new TextDecoder().decode(unplaced.stdout).replace(/[ \t]+/g, " ").trim()
        .split("\n").map((l) => l.split(" ")[1]).sort();
      assert.equal(lines[0], lines[1], "without a peer list the child keeps the parent's CPUs");
    } finally {
      await Deno.remove(directory, { recursive: true });
    }
  },
});

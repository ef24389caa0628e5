// `deno task mutants`: shows that the tests catch targeted breakages. For each mutant of
// tests/_mutants.ts it edits a private copy of the repository (the files git tracks, and
// new files it does not ignore) with one exact find/replace, runs the tests named to kill
// it (in turn, until one fails; `--no-check`: a mutant is about behaviour, types are CI's
// job) with a hard time limit, and reports whether they did. The copies are removed at
// the end, on Ctrl-C too.
//
//   deno task mutants                 every mutant, one at a time
//   deno task mutants --only ID ...   just these (repeatable)
//   deno task mutants --list          the list, without running anything
//   deno task mutants --jobs 2        two copies side by side (the machine has 2 cores)
//   deno task mutants --timeout 180   hard limit per test run, in seconds
//   deno task mutants --verbose       the end of the output that killed each mutant
//
// First a baseline: the same tests on the unmutated copy must pass (and each filter must
// select at least one test), or every result would be void; a test that passes only on
// a second try is reported as flaky. Results:
//   killed             a named test failed (a test that timed out by itself counts)
//   killed by timeout  the run hit the runner's hard limit (a hang nothing reported)
//   SURVIVED           every named test passed with the mutant in place
//   find-string-missing / find-string-ambiguous   the list is out of step with the code
// Exits 1 if a mutant survived or a find string is not there exactly once, 2 if the
// baseline failed.
import { parseArgs } from "node:util";
import { type Killer, type Mutant, MUTANTS } from "./_mutants.ts";

const ROOT = new URL("../", import.meta.url).pathname;

type Outcome =
  | "killed"
  | "killed by timeout"
  | "SURVIVED"
  | "find-string-missing"
  | "find-string-ambiguous";

interface TestRun {
  status: "passed" | "failed" | "timeout";
  passed: number;
  seconds: number;
  output: string;
}

interface MutantResult {
  mutant: Mutant;
  outcome: Outcome;
  killer?: Killer;
  seconds: number;
  /** Output of the run that decided the outcome. */
  output?: string;
}

/** Occurrences of `find` in `text` (non-overlapping). */
export function occurrences(text: string, find: string): number {
  if (find.length === 0) return 0;
  let count = 0;
  for (let at = text.indexOf(find); at !== -1; at = text.indexOf(find, at + find.length)) {
    count++;
  }
  return count;
}

function killerLabel(killer: Killer): string {
  return `${killer.test} --filter "${killer.filter}"`;
}

// Every process the runner started, by process group, so that a timeout or Ctrl-C can
// end a test run together with the children it spawned.
const running = new Set<number>();

function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch { /* already gone */ }
}

// Each copy gets a scope of its own: its tests' objects carry it in their names, and
// their leak checks ignore everyone else's (see tests/_helpers.ts).
const scopes = new Map<string, string>();

async function runTests(directory: string, killer: Killer, timeoutSeconds: number) {
  const started = performance.now();
  // setsid: the test run leads a process group of its own, children included.
  const child = new Deno.Command("setsid", {
    args: [
      Deno.execPath(),
      "test",
      "-A",
      "--unstable-net",
      "--sanitize-ops",
      "--no-check",
      "--filter",
      killer.filter,
      killer.test,
    ],
    cwd: directory,
    env: { NO_COLOR: "1", DENO_IPC_TEST_SCOPE: scopes.get(directory) ?? "" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(child.pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, timeoutSeconds * 1000);
  try {
    const { code, stdout, stderr } = await child.output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    const summary = output.match(/^(?:ok|FAILED) \| (\d+) passed/m);
    const run: TestRun = {
      status: timedOut ? "timeout" : code === 0 ? "passed" : "failed",
      passed: summary ? Number(summary[1]) : 0,
      seconds: (performance.now() - started) / 1000,
      output,
    };
    return run;
  } finally {
    clearTimeout(timer);
    killGroup(child.pid); // nothing the tests started may outlive them
    running.delete(child.pid);
    removeScopedObjects(scopes.get(directory));
  }
}

// A run killed (or broken by a mutant) before its `finally` leaves its shared memory
// behind: remove what carries this copy's scope, and nothing else.
function removeScopedObjects(scope: string | undefined): void {
  if (!scope) return;
  for (const entry of Deno.readDirSync("/dev/shm")) {
    if (!entry.name.includes(`deno-ipc-test-${scope}`)) continue;
    try {
      Deno.removeSync(`/dev/shm/${entry.name}`);
    } catch { /* gone already */ }
  }
}

function trackedFiles(): string[] {
  const { code, stdout, stderr } = new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: ROOT,
  }).outputSync();
  if (code !== 0) throw new Error(`git ls-files failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout).split("\0").filter((path) => path.length > 0);
}

async function copyRepository(files: string[]): Promise<string> {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-mutants-" });
  for (const file of files) {
    const from = ROOT + file;
    try {
      if (!(await Deno.lstat(from)).isFile) continue;
    } catch {
      continue; // deleted in the working tree
    }
    const to = `${directory}/${file}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(from, to);
  }
  return directory;
}

async function runMutant(
  directory: string,
  mutant: Mutant,
  defaultTimeout: number,
): Promise<MutantResult> {
  const path = `${directory}/${mutant.file}`;
  let original: string;
  try {
    original = await Deno.readTextFile(path);
  } catch {
    return { mutant, outcome: "find-string-missing", seconds: 0 };
  }
  const count = occurrences(original, mutant.find);
  if (count !== 1) {
    const outcome = count === 0 ? "find-string-missing" : "find-string-ambiguous";
    return { mutant, outcome, seconds: 0 };
  }
  await Deno.writeTextFile(path, original.replace(mutant.find, () => mutant.replace));
  let seconds = 0;
  try {
    for (const killer of mutant.killers) {
      const run = await runTests(directory, killer, mutant.timeoutSeconds ?? defaultTimeout);
      seconds += run.seconds;
      const { output } = run;
      if (run.status === "failed") return { mutant, outcome: "killed", killer, seconds, output };
      if (run.status === "timeout") {
        return { mutant, outcome: "killed by timeout", killer, seconds, output };
      }
    }
    return { mutant, outcome: "SURVIVED", seconds };
  } finally {
    await Deno.writeTextFile(path, original);
  }
}

/** Runs `work` over `items` with `jobs` workers, each owning one of `directories`. */
async function pool<T, R>(
  items: T[],
  directories: string[],
  work: (directory: string, item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(directories.map(async (directory) => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(directory, items[index]);
    }
  }));
  return results;
}

function table(header: string[], rows: string[][]): string {
  const escape = (cell: string) => cell.replaceAll("|", "\\|");
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(escape).join(" | ")} |`),
  ].join("\n");
}

function killersText(mutant: Mutant): string {
  return mutant.killers.map((k) => `${k.test.replace(/^tests\//, "")}: "${k.filter}"`).join("; ");
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string", multiple: true },
      list: { type: "boolean", default: false },
      jobs: { type: "string", default: "1" },
      timeout: { type: "string", default: "180" },
      verbose: { type: "boolean", default: false },
    },
  });
  const jobs = Number(values.jobs);
  const timeout = Number(values.timeout);
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`Invalid --jobs ${values.jobs}`);
  if (!(timeout > 0)) throw new RangeError(`Invalid --timeout ${values.timeout}`);

  let mutants = MUTANTS;
  if (values.only) {
    const unknown = values.only.filter((id) => !MUTANTS.some((m) => m.id === id));
    if (unknown.length > 0) throw new RangeError(`No mutant with id ${unknown.join(", ")}`);
    mutants = MUTANTS.filter((m) => values.only!.includes(m.id));
  }
  if (values.list) {
    console.log(table(
      ["mutant", "file", "what it breaks", "expected killer"],
      mutants.map((m) => [m.id, m.file, m.description, killersText(m)]),
    ));
    return 0;
  }

  const files = trackedFiles();
  const directories: string[] = [];
  const cleanUp = () => {
    for (const pid of running) killGroup(pid);
    for (const directory of directories) {
      try {
        Deno.removeSync(directory, { recursive: true });
      } catch { /* already gone */ }
    }
  };
  const onSignal = () => {
    cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    for (let i = 0; i < Math.min(jobs, mutants.length); i++) {
      const directory = await copyRepository(files);
      directories.push(directory);
      scopes.set(directory, `m${crypto.randomUUID().slice(0, 6)}-`);
    }

    // Baseline: every distinct killer on the unmutated copy.
    const killers = [
      ...new Map(mutants.flatMap((m) => m.killers).map((k) => [killerLabel(k), k])).values(),
    ];
    console.log(`baseline: ${killers.length} test runs on the unmutated copy`);
    // A test that fails the baseline once but passes when run again is flaky: say so (a
    // mutant it "kills" may have been killed by chance) and go on.
    const flaky: string[] = [];
    const baseline = await pool(killers, directories, async (directory, killer) => {
      const run = await runTests(directory, killer, timeout);
      if (run.status === "passed") return run;
      const again = await runTests(directory, killer, timeout);
      if (again.status === "passed") {
        flaky.push(`${killerLabel(killer)}\n${run.output.slice(-1500)}`);
      }
      return again;
    });
    const broken = killers.flatMap((killer, i) => {
      const run = baseline[i];
      if (run.status === "passed" && run.passed > 0) return [];
      const why = run.status === "passed" ? "no test matched the filter" : run.status;
      return [`${killerLabel(killer)}: ${why}\n${run.output.slice(-3000)}`];
    });
    if (broken.length > 0) {
      console.error(`baseline failed, so every result would be void:\n${broken.join("\n\n")}`);
      return 2;
    }
    const baselineSeconds = baseline.reduce((sum, run) => sum + run.seconds, 0);
    console.log(`baseline passed (${baselineSeconds.toFixed(1)} s)\n`);
    if (flaky.length > 0) {
      console.log(
        `warning: flaky in the baseline (failed once, then passed):\n${flaky.join("\n")}\n`,
      );
    }

    const results = await pool(mutants, directories, async (directory, mutant) => {
      const result = await runMutant(directory, mutant, timeout);
      console.log(`${result.outcome.padEnd(18)} ${mutant.id} (${result.seconds.toFixed(1)} s)`);
      if (values.verbose && result.output) {
        console.log(result.output.trimEnd().split("\n").slice(-60).join("\n") + "\n");
      }
      return result;
    });

    console.log();
    console.log(table(
      ["mutant", "file", "expected killer", "result", "time"],
      results.map((r) => [
        r.mutant.id,
        r.mutant.file,
        killersText(r.mutant),
        r.outcome,
        `${r.seconds.toFixed(1)} s`,
      ]),
    ));
    const bad = results.filter((r) => r.outcome !== "killed" && r.outcome !== "killed by timeout");
    const count = (outcome: Outcome) => results.filter((r) => r.outcome === outcome).length;
    console.log(
      `\n${count("killed")} killed, ${count("killed by timeout")} killed by timeout, ` +
        `${count("SURVIVED")} survived, ` +
        `${count("find-string-missing") + count("find-string-ambiguous")} out of step`,
    );
    return bad.length > 0 ? 1 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    cleanUp();
  }
}

if (import.meta.main) Deno.exit(await main());

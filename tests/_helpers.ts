// Test helpers: random names, leak checks, child processes.
import assert from "node:assert/strict";

// `deno task mutants` (tests/mutants.ts) runs copies of the suite while other suites may
// run on the same machine. It sets DENO_IPC_TEST_SCOPE: test names then carry the scope,
// and the leak checks look only at /dev/shm names that carry it and skip System V queues
// (whose ids name no creator), so that another run's objects are not taken for leaks.
const SCOPE_VARIABLE = "DENO_IPC_TEST_SCOPE";
const scope = Deno.permissions.querySync({ name: "env", variable: SCOPE_VARIABLE }).state ===
    "granted"
  ? Deno.env.get(SCOPE_VARIABLE) ?? ""
  : "";

/** A fresh random POSIX IPC name for a test object. */
export function testName(prefix = "t"): string {
  return `/deno-ipc-test-${scope}${prefix}-${crypto.randomUUID().slice(0, 13)}`;
}

function shmEntries(): Set<string> {
  return new Set(
    Array.from(Deno.readDirSync("/dev/shm"), (entry) => entry.name)
      .filter((name) => scope === "" || name.includes(`deno-ipc-test-${scope}`)),
  );
}

function sysvQueues(): Set<string> {
  if (scope !== "") return new Set();
  return new Set(
    Deno.readTextFileSync("/proc/sysvipc/msg").trim().split("\n").slice(1)
      .map((line) => line.trim().split(/\s+/)[1]),
  );
}

function openFds(): string[] {
  return Array.from(Deno.readDirSync("/proc/self/fd"), (entry) => entry.name).sort();
}

/**
 * Registers a test that must leave nothing behind: no new /dev/shm entries (shared
 * memory, named semaphores), no new System V message queues, and the same open fds.
 */
export function ipcTest(name: string, fn: (t: Deno.TestContext) => Promise<void> | void): void {
  Deno.test(name, async (t) => {
    const shmBefore = shmEntries();
    const queuesBefore = sysvQueues();
    const fdsBefore = openFds();
    await fn(t);
    const leaked = [...shmEntries()].filter((entry) => !shmBefore.has(entry));
    assert.deepEqual(leaked, [], `objects left in /dev/shm: ${leaked.join(", ")}`);
    const queues = [...sysvQueues()].filter((id) => !queuesBefore.has(id));
    assert.deepEqual(queues, [], `System V message queues left: ${queues.join(", ")}`);
    const fdsAfter = openFds();
    const extra = fdsAfter.filter((fd) => !fdsBefore.includes(fd)).map((fd) => {
      try {
        return `${fd} -> ${Deno.readLinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return fd;
      }
    });
    assert.deepEqual(fdsAfter, fdsBefore, `file descriptors leaked: ${extra.join(", ")}`);
  });
}

const childDirectory = new URL("./children/", import.meta.url);

/** Result of a finished child process. */
export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tests/children/<script>` in a new deno process with `args` and waits for it. */
export async function runChild(script: string, args: string[] = []): Promise<ChildResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script, childDirectory).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A running child process whose stdout can be read line by line. */
export class Child implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  #pending = "";

  constructor(
    script: string,
    args: string[] = [],
    permissions: string[] = ["-A"],
    env?: Record<string, string>,
  ) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["run", ...permissions, new URL(script, childDirectory).pathname, ...args],
      env,
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    this.#lines = this.process.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
  }

  /** The next line the child printed (throws if it exited first). */
  async line(): Promise<string> {
    while (!this.#pending.includes("\n")) {
      const chunk = await this.#lines.next();
      if (chunk.done) throw new Error(`child exited before printing a line: ${this.#pending}`);
      this.#pending += chunk.value;
    }
    const end = this.#pending.indexOf("\n");
    const line = this.#pending.slice(0, end);
    this.#pending = this.#pending.slice(end + 1);
    return line;
  }

  /** Waits for the child to exit and returns its exit status. */
  async status(): Promise<Deno.CommandStatus> {
    const status = await this.process.status;
    while (!(await this.#lines.next()).done) { /* drain */ }
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.process.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.status();
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Number of fast-check runs: `DENO_IPC_PROPERTY_RUNS` when set, else `fallback`. */
export function propertyRuns(fallback: number): number {
  const fromEnv = Number(Deno.env.get("DENO_IPC_PROPERTY_RUNS"));
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : fallback;
}

// The export fuzz: every public function, constructor and method exported from mod.ts,
// called with fast-check arbitrary arguments in a child process (so that a crash shows
// as its exit status). Pins: 0 crashes, 0 hangs, 0 errors whose message does not name
// the argument. What each outcome means is defined in tests/children/export_fuzz_child.ts.
//
// A short run by default; DENO_IPC_LONG=1 runs 40 calls per callable instead of 4
// (DENO_IPC_PROPERTY_RUNS, when set, gives the number directly).
import assert from "node:assert/strict";
import { cleanupDead, listObjects } from "../mod.ts";
import { ipcTest, propertyRuns } from "./_helpers.ts";

const LONG = Deno.env.get("DENO_IPC_LONG") === "1";
const RUNS = propertyRuns(LONG ? 40 : 4);
const CALL_TIMEOUT_MS = 1000;

ipcTest(
  "every export, called with arbitrary arguments, works or throws an error that names the argument; no crash, no hang",
  async () => {
    const temporary = Deno.makeTempDirSync({ prefix: "deno-ipc-fuzz-" });
    const seed = Date.now() % 2 ** 31;
    try {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--unstable-net",
          new URL("./children/export_fuzz_child.ts", import.meta.url).pathname,
          `${RUNS}`,
          `${seed}`,
          `${CALL_TIMEOUT_MS}`,
          temporary,
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // A synchronous hang never returns: kill the child after a generous budget.
      const budget = setTimeout(() => child.kill("SIGKILL"), (LONG ? 1800 : 300) * 1000);
      const output = await child.output();
      clearTimeout(budget);
      const stderr = new TextDecoder().decode(output.stderr);
      const lastCall = stderr.trim().split("\n").filter((line) => line.startsWith("> ")).at(-1);
      assert.equal(
        output.signal,
        null,
        `the child died by ${output.signal} (seed ${seed}) during ${lastCall}:\n${
          stderr.slice(-2000)
        }`,
      );
      assert.equal(
        output.code,
        0,
        `child exit ${output.code} (seed ${seed}):\n${stderr.slice(-2000)}`,
      );
      const summary = JSON.parse(Deno.readTextFileSync(`${temporary}/summary.json`));
      assert.deepEqual(
        summary.failures,
        [],
        `seed ${seed}: unclear errors or hangs:\n${JSON.stringify(summary.failures, null, 2)}`,
      );
      assert.equal(summary.counts.unclear + summary.counts.hang, 0);
      assert.ok(summary.calls > 500, `only ${summary.calls} calls were made`);
    } finally {
      // The child's FIFOs and sockets are in the endpoint registry; it has exited, so
      // cleanupDead removes them with their records.
      const made = listObjects({ kinds: ["fifo", "unix-socket"], scanMappings: false })
        .filter((o) => o.name.startsWith(`${temporary}/`));
      cleanupDead({ names: made.map((o) => o.name), scanMappings: false });
      Deno.removeSync(temporary, { recursive: true });
    }
  },
);

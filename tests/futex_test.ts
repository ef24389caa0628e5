// A waiter really sleeps: after its spin it parks in FUTEX_WAIT and uses (almost) no CPU
// until woken. A waiter that never announced itself, or slept on a word the waker does
// not clear, would see its futex wait return at once and spin through the thread pool:
// still correct, but burning a core for as long as it waits. The child waits with a 60 s
// slice, so only the wake can end its wait early.
import assert from "node:assert/strict";
import { MessageRing } from "../mod.ts";
import { Child, delay, ipcTest, testName } from "./_helpers.ts";

const TICKS_PER_SECOND = 100; // USER_HZ, the unit of /proc/PID/stat times on Linux

/** CPU time (user + system) that process `pid` has used, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
}

ipcTest("a waiter sleeping on the futex uses no CPU until the send wakes it", async () => {
  using ring = MessageRing.create({ name: testName("fx"), capacity: 1024 });
  const child = new Child("wakeup_child.ts", ["ring", ring.name], ["-A"], {
    DENO_IPC_WAIT_SLICE_MS: "60000",
  });
  try {
    assert.equal(await child.line(), "waiting");
    await delay(300); // past the spin and the yields
    const before = cpuSeconds(child.process.pid);
    const waited = 1.5;
    await delay(waited * 1000);
    const used = cpuSeconds(child.process.pid) - before;
    // Measured here: a sleeping waiter uses 0 to 0.01 s of CPU per second of waiting;
    // one whose futex wait returns at once, about 0.3 s (it spends most of its time
    // handing calls to the thread pool and back).
    assert.ok(used < 0.1 * waited, `the waiter used ${used} s of CPU in ${waited} s of waiting`);
    assert.equal(ring.trySend(Uint8Array.of(5)), true);
    assert.equal(await child.line(), "[5]");
    assert.equal(await child.line(), "woken");
    assert.equal((await child.status()).code, 0);
  } finally {
    await child[Symbol.asyncDispose]();
    ring.unlink();
  }
});

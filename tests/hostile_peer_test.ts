// A hostile peer writes random values over a structure's header and records between the
// victim's operations (tests/children/hostile_child.ts): the victim gets CorruptedError
// (or a timeout), never a crash, unbounded memory, or bytes of another object.
// Mutants this kills: removing the record-length check of MessageRing (a length of
// 200,000,000 or -8 comes back as a message; the pool moves backwards and hands out
// another object's bytes), removing the positions check, removing the index checks of
// BoundedBuffer (a RangeError from TypedArray.set instead of CorruptedError).
import assert from "node:assert/strict";
import { processStartTime } from "../lib/_process.ts";
import { delay, ipcTest, propertyRuns, runChild } from "./_helpers.ts";

for (const kind of ["ring", "textbook", "semaphore"]) {
  ipcTest(
    `a hostile peer cannot crash a ${kind} victim, grow its memory or leak other bytes`,
    async () => {
      const seed = Math.floor(Math.random() * 2 ** 31);
      const result = await runChild("hostile_child.ts", [
        kind,
        String(propertyRuns(150)),
        String(seed),
      ]);
      assert.equal(result.code, 0, `seed ${seed}:\n${result.stderr.slice(-3000)}`);
      assert.match(result.stdout, /^ok /);
    },
  );
}

ipcTest(
  "a hostile peer writing over a mailbox's control block and segment cannot crash the victim, hang it or grow its memory",
  async () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const result = await runChild("hostile_mailbox_child.ts", [
      String(propertyRuns(60)),
      String(seed),
    ]);
    assert.equal(result.code, 0, `seed ${seed}:\n${result.stderr.slice(-3000)}`);
    assert.match(result.stdout, /^ok /);
  },
);

for (const kind of ["direct", "doorbell"]) {
  ipcTest(
    `a hostile peer writing over a ${
      kind === "direct" ? "direct endpoint's registry" : "doorbell"
    } cannot crash the victim, hang it, or make it signal a bystander`,
    async () => {
      // `sleep` dies of SIGUSR2 and SIGKILL: the peer writes its pid and start time as
      // the listener (or a peer), with either signal.
      const bystander = new Deno.Command("sleep", { args: ["60"] }).spawn();
      let exited = false;
      bystander.status.then(() => exited = true);
      try {
        let start: number | undefined;
        for (let i = 0; i < 100 && start === undefined; i++) {
          start = processStartTime(bystander.pid);
          if (start === undefined) await delay(5);
        }
        const seed = Math.floor(Math.random() * 2 ** 31);
        const result = await runChild("hostile_registry_child.ts", [
          kind,
          String(propertyRuns(40)),
          String(seed),
          String(bystander.pid),
          String(start),
        ]);
        assert.equal(result.code, 0, `seed ${seed}:\n${result.stderr.slice(-3000)}`);
        assert.match(result.stdout, /^ok /);
        await delay(50);
        assert.equal(exited, false, "the bystander was signalled");
      } finally {
        bystander.kill("SIGKILL");
        await bystander.status;
      }
    },
  );
}

// A hostile peer writes random values over a structure's header and records between the
// victim's operations (tests/children/hostile_child.ts): the victim gets CorruptedError
// (or a timeout), never a crash, unbounded memory, or bytes of another object.
// Mutants this kills: removing the record-length check of MessageRing (a length of
// 200,000,000 or -8 comes back as a message; the pool moves backwards and hands out
// another object's bytes), removing the positions check, removing the index checks of
// BoundedBuffer (a RangeError from TypedArray.set instead of CorruptedError).
import assert from "node:assert/strict";
import { ipcTest, propertyRuns, runChild } from "./_helpers.ts";

for (const kind of ["ring", "textbook"]) {
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

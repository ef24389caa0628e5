// A mailbox's counters (bytes sent and received, highest depth, sends that found it full)
// after known traffic, as stats() and the lister (inspectObject) report them.
import assert from "node:assert/strict";
import { inspectObject, Mailbox } from "../mod.ts";
import { ipcTest, testName } from "./_helpers.ts";

ipcTest("mailbox counters: bytes, highest depth and full sends after known traffic", () => {
  const name = testName("counters");
  const box = Mailbox.create({ name, capacity: 4, maxMessageSize: 256 });
  try {
    const other = Mailbox.open({ name });
    try {
      // 3 messages of 10 bytes queued (depth 3), then 1 of 100 (depth 4: full).
      for (let i = 0; i < 3; i++) assert.ok(box.trySend(new Uint8Array(10)));
      assert.ok(box.trySend(new Uint8Array(100)));
      assert.equal(box.trySend(new Uint8Array(1)), false); // full
      assert.equal(box.trySend(new Uint8Array(1)), false); // still full
      // The other handle receives them: its tally counts in its own stats at once.
      for (let i = 0; i < 4; i++) assert.ok(other.tryReceive() !== undefined);
      const theirs = other.stats();
      assert.equal(theirs.receivedBytes, 130);
      assert.equal(theirs.sendsFoundFull, 2);
      // 200 messages of 64 bytes through an emptying mailbox: more than 3 flushes.
      for (let i = 0; i < 200; i++) {
        assert.ok(box.trySend(new Uint8Array(64)));
        assert.ok(other.tryReceive() !== undefined);
      }
      const stats = box.stats();
      assert.equal(stats.sent, 204);
      assert.equal(stats.received, 204);
      assert.equal(stats.queued, 0);
      assert.equal(stats.sentBytes, 130 + 200 * 64);
      assert.equal(stats.highestDepth, 4);
      assert.equal(stats.sendsFoundFull, 2);
    } finally {
      other.close(); // flushes its received tally
    }
    box.close();
    // After close every tally is in the header, which the lister reads.
    const report = inspectObject(name);
    assert.equal(report.kind, "mailbox");
    assert.equal(report.details.sentMessages, 204);
    assert.equal(report.details.receivedMessages, 204);
    assert.equal(report.details.sentBytes, 130 + 200 * 64);
    assert.equal(report.details.receivedBytes, 130 + 200 * 64);
    assert.equal(report.details.highestDepth, 4);
    assert.equal(report.details.sendsFoundFull, 2);
  } finally {
    Mailbox.delete(name);
  }
});

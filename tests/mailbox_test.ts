import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  ClosedError,
  CorruptedError,
  ErrnoError,
  Mailbox,
  NotFoundError,
  QueueRemovedError,
  SharedMemory,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest, testName } from "./_helpers.ts";

function shmCount(prefix: string): number {
  return Array.from(Deno.readDirSync("/dev/shm")).filter((e) => e.name.startsWith(prefix)).length;
}

ipcTest(
  "a mailbox is shared by several senders and receivers; each message names its sender",
  async () => {
    using box = Mailbox.create({ name: testName("mb"), capacity: 8 });
    try {
      using a = Mailbox.open({ name: box.name, senderName: "a" });
      using b = Mailbox.open({ name: box.name, senderName: "b" });
      using reader = Mailbox.open({ name: box.name });
      await a.send("a1");
      await b.send(new Uint8Array([1, 2, 3]));
      await a.send("a2");
      const first = await reader.receive({ timeout: 1000 });
      assert.deepEqual([first.text(), first.sender.name, first.sender.pid], ["a1", "a", Deno.pid]);
      assert.equal(first.source, box.name);
      const second = box.tryReceive()!;
      assert.deepEqual([Array.from(second.data), second.sender.name], [[1, 2, 3], "b"]);
      assert.equal((await reader.receive()).text(), "a2");
      assert.equal(box.tryReceive(), undefined);
      assert.partialDeepStrictEqual(box.stats(), { sent: 3, received: 3, queued: 0 });
      await box.send("anonymous");
      assert.equal((await a.receive()).sender.name, undefined);
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "bounded capacity n: trySend reports full at n, send waits until a receive makes room",
  async () => {
    using box = Mailbox.create({ name: testName("mb"), capacity: 2 });
    try {
      assert.equal(box.trySend("1"), true);
      assert.equal(box.trySend("2"), true);
      assert.equal(box.trySend("3"), false);
      assert.equal(box.queued, 2);
      let sent = false;
      const sending = box.send("3", { timeout: 5000 }).then(() => sent = true);
      await delay(30);
      assert.equal(sent, false, "send completed although the mailbox was full");
      assert.equal((await box.receive()).text(), "1");
      await sending;
      assert.deepEqual([box.tryReceive()!.text(), box.tryReceive()!.text()], ["2", "3"]);
      await assert.rejects(
        box.send("x").then(() => box.send("y")).then(() => box.send("z", { timeout: 20 })),
        TimedOutError,
      );
      const controller = new AbortController();
      const aborted = box.send("z", { signal: controller.signal });
      controller.abort(new Error("stop"));
      await assert.rejects(aborted, /stop/);
      assert.equal(box.queued, 2, "a send that timed out or was aborted left a message");
      await delay(150); // the abandoned waits' last slices finish on the thread pool
    } finally {
      box.delete();
    }
  },
);

ipcTest("capacity 0: send completes only when a receiver has taken the message", async () => {
  using box = Mailbox.create({ name: testName("mb"), capacity: 0 });
  try {
    let sent = false;
    const sending = box.send("hand over", { timeout: 5000 }).then(() => sent = true);
    await delay(30);
    assert.equal(sent, false, "a rendezvous send completed with no receiver");
    assert.equal(box.queued, 1);
    const message = box.tryReceive();
    assert.equal(message?.text(), "hand over");
    await sending;
    assert.partialDeepStrictEqual(box.stats(), { sent: 1, received: 1, queued: 0 });
  } finally {
    box.delete();
  }
});

ipcTest("capacity 0: a send that times out takes its message back", async () => {
  using box = Mailbox.create({ name: testName("mb"), capacity: 0 });
  try {
    await assert.rejects(box.send("never taken", { timeout: 30 }), TimedOutError);
    assert.equal(box.queued, 0);
    assert.equal(box.tryReceive(), undefined);
    assert.partialDeepStrictEqual(box.stats(), { sent: 0, received: 0, queued: 0 });
  } finally {
    box.delete();
  }
});

ipcTest("capacity 0: trySend succeeds only while a receiver is blocked in receive()", async () => {
  using box = Mailbox.create({ name: testName("mb"), capacity: 0 });
  try {
    assert.equal(box.trySend("nobody waits"), false);
    const receiving = box.receive({ timeout: 5000 });
    assert.equal(box.trySend("someone waits"), true);
    assert.equal((await receiving).text(), "someone waits");
    assert.equal(box.trySend("nobody again"), false);
    // A receiver that gives up withdraws its offer.
    await assert.rejects(box.receive({ timeout: 20 }), TimedOutError);
    assert.equal(box.trySend("after timeout"), false);
  } finally {
    box.delete();
  }
});

ipcTest("unbounded: sends never wait, segments are chained and removed once drained", async () => {
  const name = testName("mb");
  using box = Mailbox.create({
    name,
    capacity: "unbounded",
    maxMessageSize: 100,
    segmentSize: 1024,
  });
  try {
    const base = name.slice(1);
    for (let i = 0; i < 200; i++) assert.equal(box.trySend(`message ${i}`.padEnd(90, ".")), true);
    assert.equal(box.queued, 200);
    assert.ok(shmCount(`${base}.`) > 10, "no segments were chained");
    for (let i = 0; i < 200; i++) {
      assert.equal((await box.receive({ timeout: 1000 })).text(), `message ${i}`.padEnd(90, "."));
    }
    assert.equal(box.tryReceive(), undefined);
    assert.equal(shmCount(`${base}.`), 1, "drained segments were not removed");
  } finally {
    box.delete();
  }
});

ipcTest("receive waits off the main thread and honours timeout and AbortSignal", async () => {
  using box = Mailbox.create({ name: testName("mb"), capacity: 4 });
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    await assert.rejects(box.receive({ timeout: 100 }), TimedOutError);
    clearInterval(timer);
    assert.ok(ticks >= 2, `the event loop was blocked (${ticks} ticks)`); // blocked: 0
    const controller = new AbortController();
    const waiting = box.receive({ signal: controller.signal });
    controller.abort(new DOMException("enough", "AbortError"));
    await assert.rejects(waiting, /enough/);
    const late = box.receive({ timeout: 5000 });
    setTimeout(() => box.trySend("late"), 20);
    assert.equal((await late).text(), "late");
    await delay(150); // the aborted wait's last slice finishes on the thread pool
  } finally {
    box.delete();
  }
});

ipcTest("delete: other handles and waiting receivers get QueueRemovedError", async () => {
  const box = Mailbox.create({ name: testName("mb"), capacity: 4 });
  using other = Mailbox.open({ name: box.name });
  try {
    const waiting = other.receive({ timeout: 5000 });
    waiting.catch(() => {});
    box.delete();
    await assert.rejects(waiting, QueueRemovedError);
    assert.throws(() => other.trySend("x"), QueueRemovedError);
    assert.throws(() => other.tryReceive(), /was deleted/);
    assert.equal(other.deleted, true);
    assert.throws(() => Mailbox.open({ name: box.name }), NotFoundError);
  } finally {
    box.close();
  }
});

ipcTest(
  "close is idempotent and a closed handle throws ClosedError; a waiter is released",
  async () => {
    const box = Mailbox.create({ name: testName("mb"), capacity: 1 });
    const other = Mailbox.open({ name: box.name });
    try {
      const waiting = other.receive();
      waiting.catch(() => {});
      other.close();
      other.close();
      await assert.rejects(waiting, ClosedError);
      assert.throws(() => other.trySend("x"), ClosedError);
      assert.throws(() => other.tryReceive(), ClosedError);
      await assert.rejects(other.send("x"), ClosedError);
      assert.equal(other.closed, true);
      assert.equal(box.trySend("still works"), true);
      await delay(150); // the abandoned wait's last slice finishes on the thread pool
    } finally {
      box.delete();
      box.close();
    }
  },
);

ipcTest("bad input is rejected before any syscall, with nothing sent lost", async () => {
  const name = testName("mb");
  assert.throws(() => Mailbox.create({ name, capacity: -1 }), RangeError);
  assert.throws(() => Mailbox.create({ name, capacity: 1.5 }), RangeError);
  assert.throws(() => Mailbox.create({ name, capacity: "lots" as never }), TypeError);
  assert.throws(() => Mailbox.create({ name } as never), /capacity is required/);
  assert.throws(() => Mailbox.create({ name: "no-slash", capacity: 1 }), TypeError);
  assert.throws(() => Mailbox.create({ name: "/" + "x".repeat(250), capacity: 1 }), RangeError);
  assert.throws(
    () => Mailbox.create({ name, capacity: 2 ** 20, maxMessageSize: 2 ** 20 }),
    /lower maxMessageSize/,
  );
  assert.throws(
    () => Mailbox.create({ name, capacity: 1, senderName: "x".repeat(65) }),
    RangeError,
  );
  assert.throws(() => Mailbox.create({ name, capacity: 1, mode: 0o1000 }), RangeError);
  assert.throws(() => Mailbox.open({ name }), NotFoundError);
  using box = Mailbox.create({ name, capacity: 2, maxMessageSize: 8 });
  try {
    assert.throws(() => Mailbox.create({ name, capacity: 2 }), AlreadyExistsError);
    assert.equal(box.trySend("kept"), true);
    assert.throws(() => box.trySend(new Uint8Array(9)), /does not fit mailbox/);
    await assert.rejects(box.send(42 as never), TypeError);
    await assert.rejects(box.receive({ timeout: -1 }), RangeError);
    assert.equal(box.tryReceive()?.text(), "kept");
  } finally {
    box.delete();
  }
  const shm = (await import("../mod.ts")).SharedMemory.create({ name, size: 64 });
  try {
    assert.throws(() => Mailbox.open({ name }), (error) => {
      return error instanceof ErrnoError && error.code === "EINVAL" &&
        /not a mailbox/.test(error.message);
    });
  } finally {
    shm.close();
    shm.unlink();
  }
});

ipcTest("created mailboxes have mode 0600", () => {
  const name = testName("mb");
  using box = Mailbox.create({ name, capacity: 1 });
  try {
    assert.equal(Deno.statSync(`/dev/shm${name}`).mode! & 0o777, 0o600);
    const segment = Array.from(Deno.readDirSync("/dev/shm"), (entry) => entry.name)
      .find((entry) => entry.startsWith(`${name.slice(1)}.`) && entry.endsWith(".0"));
    assert.ok(segment, "no first segment");
    assert.equal(Deno.statSync(`/dev/shm/${segment}`).mode! & 0o777, 0o600);
  } finally {
    box.delete();
  }
});

ipcTest("concurrent sends on one handle each deliver their own message, in order", async () => {
  using box = Mailbox.create({ name: testName("mb"), capacity: 1 });
  try {
    const texts = ["first", "second", "third!", "fourth"];
    const sending = Promise.all(texts.map((text) => box.send(text, { timeout: 5000 })));
    const received: string[] = [];
    for (let i = 0; i < texts.length; i++) {
      received.push((await box.receive({ timeout: 5000 })).text());
    }
    await sending;
    assert.deepEqual(received, texts);
  } finally {
    box.delete();
  }
});

ipcTest("capacity 0: deleting the mailbox ends a waiting send with QueueRemovedError", async () => {
  const box = Mailbox.create({ name: testName("mb"), capacity: 0 });
  try {
    const sending = box.send("nobody takes this", { timeout: 5000 });
    sending.catch(() => {});
    await delay(20);
    Mailbox.delete(box.name);
    await assert.rejects(sending, QueueRemovedError);
  } finally {
    box.close();
  }
});

ipcTest("unbounded: a handle that only sends lets go of drained segments", async () => {
  const name = testName("mb");
  using box = Mailbox.create({
    name,
    capacity: "unbounded",
    maxMessageSize: 100,
    segmentSize: 1024,
  });
  using sender = Mailbox.open({ name });
  const mappedSegments = () =>
    Deno.readTextFileSync("/proc/self/maps").split("\n")
      .filter((line) => line.includes(`${name}.`) && line.includes("(deleted)")).length;
  try {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) assert.equal(sender.trySend("x".repeat(90)), true);
      for (let i = 0; i < 100; i++) await box.receive({ timeout: 1000 });
    }
    // The sender lets go when it next chains a segment.
    for (let i = 0; i < 20; i++) assert.equal(sender.trySend("x".repeat(90)), true);
    assert.ok(mappedSegments() <= 6, `${mappedSegments()} segments still mapped`);
  } finally {
    box.delete();
  }
});

ipcTest("segments never touch another object named like them", async () => {
  const name = testName("mb");
  using other = (await import("../mod.ts")).SharedMemory.create({ name: `${name}.1`, size: 64 });
  try {
    other.bytes[0] = 42;
    using box = Mailbox.create({
      name,
      capacity: "unbounded",
      maxMessageSize: 100,
      segmentSize: 1024,
    });
    try {
      for (let i = 0; i < 50; i++) box.trySend("y".repeat(90));
      while (box.tryReceive()) { /* drain */ }
    } finally {
      box.delete();
    }
    using again = (await import("../mod.ts")).SharedMemory.open({ name: `${name}.1` });
    assert.equal(again.bytes[0], 42, "a segment replaced an unrelated object");
  } finally {
    other.unlink();
  }
});

ipcTest(
  "a creator killed while initializing a mailbox leaves its name free: the next create works at once",
  async () => {
    const name = testName("mbx");
    // Step 1 is the first segment's own publish, step 2 the control block's, just before
    // its name appears.
    const child = new Child("channel_child.ts", ["create-mailbox", name], ["-A"], {
      DENO_IPC_CRASH_AT: "shm.create.initialized",
      DENO_IPC_CRASH_AFTER: "2",
    });
    assert.equal(await child.line(), "creating");
    assert.equal((await child.status()).signal, "SIGKILL");
    assert.throws(() => Mailbox.open({ name }), NotFoundError);
    using box = Mailbox.create({ name, capacity: 2 });
    try {
      await box.send("works");
      assert.equal((await box.receive({ timeout: 1000 })).text(), "works");
    } finally {
      box.delete();
      // The dead creator's first segment, under its own random token.
      for (const entry of Deno.readDirSync("/dev/shm")) {
        if (entry.name.startsWith(`${name.slice(1)}.`)) Deno.removeSync(`/dev/shm/${entry.name}`);
      }
    }
  },
);

ipcTest(
  "delete() of a mailbox whose segment indices another process wrote over removes what it can and reports CorruptedError, without walking 2^30 names",
  () => {
    const box = Mailbox.create({ name: testName("mbx"), capacity: "unbounded" });
    try {
      using control = SharedMemory.open({ name: box.name });
      const words = control.view(Int32Array, 0, 64);
      Atomics.store(words, 18, Atomics.load(words, 34) + 2 ** 30); // write segment
      assert.throws(() => box.delete(), CorruptedError);
      assert.throws(() => Mailbox.open({ name: box.name }), NotFoundError);
    } finally {
      box.close();
      for (const entry of Deno.readDirSync("/dev/shm")) {
        if (entry.name.startsWith(`${box.name.slice(1)}.`)) {
          Deno.removeSync(`/dev/shm/${entry.name}`);
        }
      }
    }
  },
);

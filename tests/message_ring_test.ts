import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  BoundedBuffer,
  ClosedError,
  ErrnoError,
  MessageRing,
  NotFoundError,
  SharedMemory,
  StreamEndedError,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest, testName } from "./_helpers.ts";

ipcTest("MessageRing.create() rounds the capacity up to a power of two, at least 64", () => {
  for (const [requested, capacity] of [[1, 64], [64, 64], [65, 128], [4096, 4096], [5000, 8192]]) {
    using ring = MessageRing.create({ name: testName(), capacity: requested });
    try {
      assert.equal(ring.capacity, capacity);
      assert.equal(ring.maxMessageSize, capacity - 8);
    } finally {
      ring.unlink();
    }
  }
});

ipcTest(
  "MessageRing carries messages of every size up to the largest, across the wrap",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 256 });
    using reader = MessageRing.open({ name: ring.name });
    try {
      for (let round = 0; round < 3; round++) {
        for (const size of [0, 1, 7, 8, 9, 100, 247, 248]) {
          const message = Uint8Array.from(
            { length: size },
            (_, i) => (i * 13 + size + round) & 0xff,
          );
          await ring.send(message, { timeout: 1000 });
          assert.deepEqual(await reader.receive({ timeout: 1000 }), message);
        }
      }
      assert.equal(ring.usedBytes, 0);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "MessageRing.send() of a message larger than the ring is a RangeError, not a hang",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 64 });
    try {
      assert.throws(() => ring.trySend(new Uint8Array(57)), RangeError);
      await assert.rejects(ring.send(new Uint8Array(57)), RangeError);
      assert.equal(ring.trySend(new Uint8Array(56)), true);
      assert.equal(ring.usedBytes, 64);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest("MessageRing.send() waits for room, and a receive in another handle makes it", async () => {
  using ring = MessageRing.create({ name: testName(), capacity: 64 });
  using reader = MessageRing.open({ name: ring.name });
  try {
    assert.equal(ring.trySend(new Uint8Array(40)), true);
    assert.equal(ring.trySend(new Uint8Array(20)), false);
    await assert.rejects(ring.send(new Uint8Array(20), { timeout: 30 }), TimedOutError);
    const waiting = ring.send(new Uint8Array(20), { timeout: 5000 });
    await delay(20);
    assert.equal((await reader.receive())?.length, 40);
    await waiting;
    assert.equal((await reader.receive())?.length, 20);
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "MessageRing.receive() rejects with the abort reason or ClosedError while waiting",
  async () => {
    const ring = MessageRing.create({ name: testName(), capacity: 64 });
    try {
      const controller = new AbortController();
      const aborted = ring.receive({ signal: controller.signal });
      controller.abort(new Error("no more waiting"));
      await assert.rejects(aborted, /no more waiting/);
      const closing = ring.receive();
      await delay(10);
      ring.close();
      await assert.rejects(closing, ClosedError);
      await delay(150); // the last futex slices finish on the thread pool
    } finally {
      MessageRing.unlink(ring.name);
    }
  },
);

ipcTest(
  "MessageRing.end(): receivers drain, then get null; sending after it is StreamEndedError",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 1024 });
    using reader = MessageRing.open({ name: ring.name });
    try {
      const waiting = reader.receive({ timeout: 5000 });
      await ring.sendText("last");
      assert.equal(new TextDecoder().decode((await waiting)!), "last");
      await ring.sendJson({ n: 1 });
      ring.end();
      ring.end(); // once per handle
      assert.throws(() => ring.trySend(new Uint8Array(1)), StreamEndedError);
      await assert.rejects(
        ring.send(new Uint8Array(1)),
        (e: unknown) =>
          e instanceof StreamEndedError && e.code === "EPIPE" && e.objectName === ring.name,
      );
      assert.deepEqual(await reader.receiveJson(), { n: 1 });
      assert.equal(await reader.receive(), null);
      assert.equal(reader.tryReceive(), null);
      assert.equal(await reader.receiveText(), null);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest("MessageRing with producers: 2 ends only after both producers called end()", () => {
  using ring = MessageRing.create({ name: testName(), capacity: 1024, producers: 2 });
  using second = MessageRing.open({ name: ring.name });
  try {
    ring.end();
    assert.equal(ring.tryReceive(), undefined);
    assert.equal(second.trySend(new Uint8Array([9])), true);
    second.end();
    assert.deepEqual(ring.tryReceive(), new Uint8Array([9]));
    assert.equal(ring.tryReceive(), null);
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "MessageRing streams: a WritableStream ends the ring, a ReadableStream closes at the end",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 4096 });
    using reader = MessageRing.open({ name: ring.name });
    try {
      const writer = ring.writable().getWriter();
      for (const text of ["a", "bb", "ccc"]) await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const chunks = await Array.fromAsync(reader.readable());
      assert.deepEqual(chunks.map((c) => new TextDecoder().decode(c)), ["a", "bb", "ccc"]);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "MessageRing after close(): every operation throws ClosedError; close() again is fine",
  async () => {
    const ring = MessageRing.create({ name: testName(), capacity: 64 });
    try {
      ring.close();
      ring.close();
      assert.equal(ring.closed, true);
      assert.throws(() => ring.trySend(new Uint8Array(1)), ClosedError);
      assert.throws(() => ring.tryReceive(), ClosedError);
      assert.throws(() => ring.end(), ClosedError);
      assert.throws(() => ring.usedBytes, ClosedError);
      await assert.rejects(ring.send(new Uint8Array(1)), ClosedError);
      await assert.rejects(ring.receive(), ClosedError);
    } finally {
      MessageRing.unlink(ring.name);
    }
  },
);

ipcTest("MessageRing.create() is exclusive; open() checks that the object is a ring", () => {
  using ring = MessageRing.create({ name: testName(), capacity: 64 });
  using other = SharedMemory.create({ name: testName(), size: 4096 });
  using buffer = BoundedBuffer.create({ name: testName(), bufferSize: 2, itemSize: 1 });
  try {
    assert.throws(() => MessageRing.create({ name: ring.name, capacity: 64 }), AlreadyExistsError);
    assert.throws(() => MessageRing.open({ name: testName() }), NotFoundError);
    for (const name of [other.name, buffer.name]) {
      assert.throws(
        () => MessageRing.open({ name }),
        (e: unknown) =>
          e instanceof ErrnoError && e.code === "EINVAL" && /not a message ring/.test(e.message),
      );
    }
  } finally {
    ring.unlink();
    other.unlink();
    buffer.unlink();
  }
});

const badRingOptions: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ["no options", undefined, TypeError],
  ["a zero capacity", { capacity: 0 }, RangeError],
  ["a capacity over 2^30", { capacity: 2 ** 30 + 1 }, RangeError],
  ["a NaN capacity", { capacity: NaN }, TypeError],
  ["a fractional capacity", { capacity: 100.5 }, RangeError],
  ["negative producers", { capacity: 64, producers: -1 }, RangeError],
  ["more than 4096 producers", { capacity: 64, producers: 4097 }, RangeError],
  ["a non-boolean multiProducer", { capacity: 64, multiProducer: "yes" }, TypeError],
  ["a bad name", { capacity: 64, name: "ring" }, TypeError],
  ["a bad mode", { capacity: 64, mode: 0o1000 }, RangeError],
];

for (const [why, options, ErrorClass] of badRingOptions) {
  ipcTest(`MessageRing.create() rejects ${why} before any syscall`, () => {
    // deno-lint-ignore no-explicit-any
    assert.throws(() => MessageRing.create(options as any), ErrorClass);
  });
}

ipcTest("MessageRing rejects messages that are not Uint8Array, keeping what was sent", async () => {
  using ring = MessageRing.create({ name: testName(), capacity: 64 });
  try {
    ring.trySend(new Uint8Array([5]));
    for (const bad of ["text", [1, 2], new ArrayBuffer(2), null, new Uint16Array(2)]) {
      // deno-lint-ignore no-explicit-any
      assert.throws(() => ring.trySend(bad as any), TypeError);
      // deno-lint-ignore no-explicit-any
      await assert.rejects(ring.send(bad as any), TypeError);
    }
    assert.deepEqual(ring.tryReceive(), new Uint8Array([5]));
    assert.equal(ring.tryReceive(), undefined);
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "MessageRing.tryReceiveInto() copies into the caller's buffer and keeps a too long message",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 4096 });
    try {
      ring.trySend(new Uint8Array([1, 2, 3, 4, 5]));
      ring.trySend(new Uint8Array(300).fill(7));
      const small = new Uint8Array(4);
      assert.throws(() => ring.tryReceiveInto(small), RangeError);
      const buffer = new Uint8Array(400);
      assert.equal(ring.tryReceiveInto(buffer), 5);
      assert.deepEqual(buffer.subarray(0, 5), new Uint8Array([1, 2, 3, 4, 5]));
      assert.equal(await ring.receiveInto(buffer, { timeout: 100 }), 300);
      assert.ok(buffer.subarray(0, 300).every((byte) => byte === 7));
      assert.equal(ring.tryReceiveInto(buffer), undefined);
      await assert.rejects(ring.receiveInto(buffer, { timeout: 10 }), TimedOutError);
      ring.end();
      assert.equal(await ring.receiveInto(buffer), null);
      // deno-lint-ignore no-explicit-any
      assert.throws(() => ring.tryReceiveInto([] as any), TypeError);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "MessageRing.receive(): small messages share a chunk but never each other's bytes",
  async () => {
    using ring = MessageRing.create({ name: testName(), capacity: 1 << 16 });
    try {
      const received: Uint8Array[] = [];
      for (let i = 0; i < 2000; i++) {
        const message = new Uint8Array(1 + (i % 40)).fill(i & 0xff);
        if (!ring.trySend(message)) {
          received.push(...drain(ring));
          assert.ok(ring.trySend(message));
        }
      }
      received.push(...drain(ring));
      assert.equal(received.length, 2000);
      received.forEach((message, i) => {
        assert.equal(message.length, 1 + (i % 40));
        assert.ok(message.every((byte) => byte === (i & 0xff)), `message ${i} was overwritten`);
      });
      // A pooled message is a view: its bytes start at byteOffset of a larger buffer.
      const view = new DataView(received[5].buffer, received[5].byteOffset, received[5].byteLength);
      assert.equal(view.getUint8(0), 5);
      const large = new Uint8Array(2000).fill(9);
      await ring.send(large);
      const copy = await ring.receive();
      assert.equal(copy?.byteOffset, 0);
      assert.equal(copy?.buffer.byteLength, 2000); // messages over 1 KiB own their buffer
    } finally {
      ring.unlink();
    }
  },
);

function drain(ring: MessageRing): Uint8Array[] {
  const messages: Uint8Array[] = [];
  for (let message = ring.tryReceive(); message; message = ring.tryReceive()) {
    messages.push(message);
  }
  return messages;
}

// Moves `bytes` through `ring` with real traffic: `sender` sends records of at most half
// the ring and `receiver` takes each, so the positions travel that far (mod 2^32).
function moveThrough(sender: MessageRing, receiver: MessageRing, bytes: number): void {
  const half = sender.capacity / 2;
  const message = new Uint8Array(half - 8);
  const buffer = new Uint8Array(half);
  for (let left = bytes; left > 0;) {
    const record = Math.min(half, left);
    assert.equal(sender.trySend(message.subarray(0, record - 8)), true);
    assert.equal(receiver.tryReceiveInto(buffer), record - 8);
    left -= record;
  }
}

ipcTest(
  "several producers: after others moved the head exactly 2^32 bytes, a producer does not overwrite unread messages",
  () => {
    const capacity = 2 ** 20;
    using ring = MessageRing.create({ name: testName("mr"), capacity, multiProducer: true });
    try {
      using producer = MessageRing.open({ name: ring.name });
      using other = MessageRing.open({ name: ring.name });
      assert.equal(producer.trySend(new Uint8Array([1])), true); // caches the tail; head 16
      assert.deepEqual(ring.tryReceive(), new Uint8Array([1]));
      // Other producers move 2^32 - 2^20 bytes, then fill the ring with two unread
      // records: the head is back at 16 (mod 2^32), where this producer left it.
      moveThrough(other, ring, 2 ** 32 - capacity);
      const fill = new Uint8Array(capacity / 2 - 8).fill(7);
      assert.equal(other.trySend(fill), true);
      assert.equal(other.trySend(fill), true);
      assert.equal(ring.usedBytes, capacity);
      assert.equal(producer.trySend(new Uint8Array([2])), false, "wrote into a full ring");
      assert.deepEqual(ring.tryReceive(), fill);
      assert.deepEqual(ring.tryReceive(), fill);
      assert.equal(ring.tryReceive(), undefined);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "several consumers: after others moved the tail exactly 2^32 bytes, a consumer reads no phantom message",
  () => {
    const capacity = 2 ** 20;
    using ring = MessageRing.create({ name: testName("mr"), capacity, multiConsumer: true });
    try {
      using consumer = MessageRing.open({ name: ring.name });
      using other = MessageRing.open({ name: ring.name });
      ring.trySend(new Uint8Array([1]));
      ring.trySend(new Uint8Array([2]));
      // This consumer takes the first and caches the head (32); another takes the second.
      assert.deepEqual(consumer.tryReceive(), new Uint8Array([1]));
      assert.deepEqual(other.tryReceive(), new Uint8Array([2]));
      // Others move the tail 2^32 - 16 bytes more: it is back at 16 (mod 2^32), where
      // this consumer left it, and the ring is empty.
      moveThrough(ring, other, 2 ** 32 - 16);
      assert.equal(ring.usedBytes, 0);
      assert.equal(consumer.tryReceive(), undefined, "a phantom message was read");
      ring.trySend(new Uint8Array([3]));
      assert.deepEqual(consumer.tryReceive(), new Uint8Array([3]));
    } finally {
      ring.unlink();
    }
  },
);

ipcTest("a received message's buffer may be transferred; later receives still work", () => {
  using ring = MessageRing.create({ name: testName("mr"), capacity: 1024 });
  try {
    ring.trySend(new Uint8Array([1, 2]));
    ring.trySend(new Uint8Array([3, 4]));
    const first = ring.tryReceive() as Uint8Array;
    (first.buffer as ArrayBuffer).transfer(); // detaches the pool chunk it was cut from
    assert.deepEqual(ring.tryReceive(), new Uint8Array([3, 4]));
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "a creator killed after initializing, before publishing, leaves no ring under the name; the next create takes the name and removes its temporary",
  async () => {
    const name = testName("mr");
    const child = new Child("channel_child.ts", ["create-ring", name], ["-A"], {
      DENO_IPC_CRASH_AT: "shm.create.initialized",
    });
    assert.equal(await child.line(), "creating");
    assert.equal((await child.status()).signal, "SIGKILL");
    const temporaries = () =>
      [...Deno.readDirSync("/dev/shm")].filter((entry) =>
        entry.name.startsWith(`.deno-ipc-init.${child.process.pid}.`)
      );
    assert.equal(temporaries().length, 1, "the dead creator's temporary is there");
    // Nothing half-made is visible: the name does not exist (no wait, no EINVAL).
    assert.throws(() => MessageRing.open({ name }), NotFoundError);
    using ring = MessageRing.create({ name, capacity: 1024 });
    try {
      assert.deepEqual(temporaries(), []);
      assert.equal(ring.trySend(new Uint8Array([1])), true);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest("a record never overruns unread bytes: a ring 8 bytes short of a record refuses it", () => {
  using ring = MessageRing.create({ name: testName("mr"), capacity: 64 });
  try {
    const first = new Uint8Array(40).fill(1); // a record of 48 bytes: 16 left
    assert.equal(ring.trySend(first), true);
    assert.equal(ring.trySend(new Uint8Array(9).fill(2)), false); // needs 24
    assert.equal(ring.trySend(new Uint8Array(8).fill(3)), true); // needs 16: fits exactly
    assert.deepEqual(ring.tryReceive(), first);
    assert.deepEqual(ring.tryReceive(), new Uint8Array(8).fill(3));
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "a producer handle beyond the declared producers ends the stream when it ends",
  async () => {
    using ring = MessageRing.create({ name: testName("mr"), capacity: 1024, producers: 1 });
    try {
      {
        using first = MessageRing.open({ name: ring.name });
        first.trySend(new Uint8Array([1])); // takes the one producer slot, then closes
      }
      using reopened = MessageRing.open({ name: ring.name });
      reopened.trySend(new Uint8Array([2])); // untracked: no slot left
      reopened.end();
      assert.deepEqual(await ring.receive({ timeout: 1000 }), new Uint8Array([1]));
      assert.deepEqual(await ring.receive({ timeout: 1000 }), new Uint8Array([2]));
      assert.equal(await ring.receive({ timeout: 1000 }), null);
    } finally {
      ring.unlink();
    }
  },
);

import assert from "node:assert/strict";
import {
  BoundedBuffer,
  ClosedError,
  ErrnoError,
  MessageRing,
  SemaphoreBoundedBuffer,
  StreamEndedError,
  TimedOutError,
} from "../mod.ts";
import { delay, ipcTest, testName } from "./_helpers.ts";

ipcTest("BoundedBuffer keeps one slot empty: full is (in + 1) % BUFFER_SIZE == out", () => {
  using buffer = BoundedBuffer.create({ name: testName(), bufferSize: 4, itemSize: 2 });
  try {
    const trace: string[] = [];
    for (let i = 0; i < 4; i++) {
      const sent = buffer.trySend(new Uint8Array([i, i]));
      trace.push(`${sent ? "sent" : "full"} in=${buffer.in} out=${buffer.out}`);
    }
    assert.deepEqual(trace, [
      "sent in=1 out=0",
      "sent in=2 out=0",
      "sent in=3 out=0",
      "full in=3 out=0",
    ]);
    assert.equal(buffer.count, 3);
    assert.deepEqual(buffer.tryReceive(), new Uint8Array([0, 0]));
    assert.equal(buffer.out, 1);
    assert.equal(buffer.trySend(new Uint8Array([9, 9])), true);
    assert.equal(buffer.in, 0); // wrapped around
  } finally {
    buffer.unlink();
  }
});

ipcTest("BoundedBuffer: the consumer waits while empty and the producer while full", async () => {
  using producer = BoundedBuffer.create({ name: testName(), bufferSize: 2, itemSize: 1 });
  using consumer = BoundedBuffer.open({ name: producer.name });
  try {
    await assert.rejects(consumer.receive({ timeout: 20 }), TimedOutError);
    const receiving = consumer.receive({ timeout: 5000 });
    await delay(10);
    await producer.send(new Uint8Array([1]));
    assert.deepEqual(await receiving, new Uint8Array([1]));
    await producer.send(new Uint8Array([2]));
    await assert.rejects(producer.send(new Uint8Array([3]), { timeout: 20 }), TimedOutError);
    const sending = producer.send(new Uint8Array([3]), { timeout: 5000 });
    await delay(10);
    assert.deepEqual(await consumer.receive(), new Uint8Array([2]));
    await sending;
    producer.end();
    assert.deepEqual(await consumer.receive(), new Uint8Array([3]));
    assert.equal(await consumer.receive(), null);
    assert.equal(consumer.ended, true);
  } finally {
    producer.unlink();
  }
});

ipcTest("SemaphoreBoundedBuffer uses every slot and ends for every consumer", async () => {
  using buffer = SemaphoreBoundedBuffer.create({ name: testName(), bufferSize: 3, itemSize: 1 });
  using a = SemaphoreBoundedBuffer.open({ name: buffer.name });
  using b = SemaphoreBoundedBuffer.open({ name: buffer.name });
  try {
    for (let i = 0; i < 3; i++) assert.equal(buffer.trySend(new Uint8Array([i])), true);
    assert.equal(buffer.trySend(new Uint8Array([3])), false);
    assert.deepEqual([buffer.count, buffer.in, buffer.out], [3, 0, 0]);
    await assert.rejects(buffer.send(new Uint8Array([3]), { timeout: 20 }), TimedOutError);
    const waitingA = a.receive();
    const waitingB = b.receive();
    assert.deepEqual([(await waitingA)?.[0], (await waitingB)?.[0]], [0, 1]);
    buffer.end();
    await assert.rejects(buffer.send(new Uint8Array([4])), StreamEndedError);
    assert.deepEqual(await a.receive(), new Uint8Array([2]));
    assert.equal(await a.receive(), null);
    assert.equal(await b.receive({ timeout: 1000 }), null);
    assert.equal(b.tryReceive(), null);
  } finally {
    buffer.unlink();
  }
});

ipcTest(
  "SemaphoreBoundedBuffer: a send waiting for room fails with StreamEndedError at the end",
  async () => {
    using buffer = SemaphoreBoundedBuffer.create({ name: testName(), bufferSize: 1, itemSize: 1 });
    try {
      buffer.trySend(new Uint8Array([1]));
      const waiting = buffer.send(new Uint8Array([2]), { timeout: 5000 });
      await delay(10);
      buffer.end();
      assert.deepEqual(buffer.tryReceive(), new Uint8Array([1])); // frees the slot
      await assert.rejects(waiting, StreamEndedError);
      assert.equal(buffer.tryReceive(), null);
    } finally {
      buffer.unlink();
    }
  },
);

const kinds = [
  ["BoundedBuffer", BoundedBuffer, 2],
  ["SemaphoreBoundedBuffer", SemaphoreBoundedBuffer, 1],
] as const;

for (const [label, Kind, minimumSlots] of kinds) {
  const badShapes: [string, unknown, typeof TypeError | typeof RangeError][] = [
    ["no options", undefined, TypeError],
    ["too few slots", { bufferSize: minimumSlots - 1, itemSize: 1 }, RangeError],
    ["a zero item size", { bufferSize: 4, itemSize: 0 }, RangeError],
    ["a NaN buffer size", { bufferSize: NaN, itemSize: 1 }, TypeError],
    ["more than 2 GiB", { bufferSize: 2 ** 20, itemSize: 2 ** 20 }, RangeError],
    // Its identity block would lie past the 32-bit offset the header keeps: untracked,
    // and listed as corrupted.
    ["exactly 2 GiB of slots", { bufferSize: 2 ** 20, itemSize: 2 ** 11 }, RangeError],
    ["a string item size", { bufferSize: 4, itemSize: "8" }, TypeError],
    ["a bad name", { bufferSize: 4, itemSize: 1, name: "/a/b" }, TypeError],
  ];
  for (const [why, options, ErrorClass] of badShapes) {
    ipcTest(`${label}.create() rejects ${why} before any syscall`, () => {
      // deno-lint-ignore no-explicit-any
      assert.throws(() => Kind.create(options as any), ErrorClass);
    });
  }

  ipcTest(`${label} rejects items of the wrong size or type, keeping what was sent`, async () => {
    using buffer = Kind.create({ name: testName(), bufferSize: 4, itemSize: 4 });
    try {
      buffer.trySend(new Uint8Array([1, 2, 3, 4]));
      assert.throws(() => buffer.trySend(new Uint8Array(3)), RangeError);
      await assert.rejects(buffer.send(new Uint8Array(5)), RangeError);
      // deno-lint-ignore no-explicit-any
      assert.throws(() => buffer.trySend([1, 2, 3, 4] as any), TypeError);
      assert.deepEqual(buffer.tryReceive(), new Uint8Array([1, 2, 3, 4]));
      assert.equal(buffer.tryReceive(), undefined);
    } finally {
      buffer.unlink();
    }
  });

  ipcTest(
    `${label} after close(): operations throw ClosedError; open() checks the kind`,
    async () => {
      const buffer = Kind.create({ name: testName(), bufferSize: 4, itemSize: 1 });
      using ring = MessageRing.create({ name: testName(), capacity: 4096 });
      try {
        buffer.close();
        buffer.close();
        assert.throws(() => buffer.trySend(new Uint8Array(1)), ClosedError);
        assert.throws(() => buffer.tryReceive(), ClosedError);
        assert.throws(() => buffer.count, ClosedError);
        await assert.rejects(buffer.receive(), ClosedError);
        assert.throws(
          () => Kind.open({ name: ring.name }),
          (e: unknown) => e instanceof ErrnoError && e.code === "EINVAL",
        );
      } finally {
        Kind.unlink(buffer.name);
        ring.unlink();
      }
    },
  );
}

ipcTest("SemaphoreBoundedBuffer: close() right after send() loses no semaphore unit", async () => {
  const buffer = SemaphoreBoundedBuffer.create({
    name: testName("sb"),
    bufferSize: 1,
    itemSize: 1,
  });
  using other = SemaphoreBoundedBuffer.open({ name: buffer.name });
  try {
    const sending = buffer.send(new Uint8Array([7]));
    buffer.close();
    const sent = await sending.then(() => true, (error) => {
      assert.ok(error instanceof ClosedError, String(error));
      return false;
    });
    if (sent) {
      assert.deepEqual(other.tryReceive(), new Uint8Array([7]));
    }
    // The one slot is usable: neither its `empty` unit nor the mutex was lost.
    assert.equal(other.trySend(new Uint8Array([8])), true);
    assert.deepEqual(other.tryReceive(), new Uint8Array([8]));
  } finally {
    SemaphoreBoundedBuffer.unlink(buffer.name);
  }
});

ipcTest("SemaphoreBoundedBuffer: close() ends a waiting receive with ClosedError", async () => {
  const buffer = SemaphoreBoundedBuffer.create({
    name: testName("sb"),
    bufferSize: 2,
    itemSize: 1,
  });
  using other = SemaphoreBoundedBuffer.open({ name: buffer.name });
  try {
    const receiving = buffer.receive();
    receiving.catch(() => {});
    await delay(10);
    buffer.close();
    await assert.rejects(receiving, ClosedError);
    assert.equal(other.trySend(new Uint8Array([1])), true);
    // The abandoned wait's last slice may take that unit; it gives it back when it ends.
    assert.deepEqual(await other.receive({ timeout: 1000 }), new Uint8Array([1]));
    await delay(150); // the abandoned wait's last slice finishes on the thread pool
  } finally {
    SemaphoreBoundedBuffer.unlink(buffer.name);
  }
});

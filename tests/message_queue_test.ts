import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AlreadyExistsError,
  ClosedError,
  ErrnoError,
  MessageQueue,
  NotFoundError,
  PosixMessageQueue,
  QueueRemovedError,
  TimedOutError,
} from "../mod.ts";
import { delay, ipcTest, propertyRuns, testName } from "./_helpers.ts";

const CHILD = new URL("./children/queue_child.ts", import.meta.url).pathname;

async function run(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout);
}

// The System V selection rules, as msgrcv(2) states them.
function select(
  queue: { type: number; data: string }[],
  type: number,
  except: boolean,
): number {
  if (type === 0) return queue.length > 0 ? 0 : -1;
  if (type > 0) return queue.findIndex((m) => except ? m.type !== type : m.type === type);
  const eligible = queue.filter((m) => m.type <= -type);
  if (eligible.length === 0) return -1;
  const lowest = Math.min(...eligible.map((m) => m.type));
  return queue.findIndex((m) => m.type === lowest);
}

ipcTest(
  "MessageQueue: random sends and selective receives follow msgrcv's type rules and capacity",
  () => {
    const operation = fc.oneof(
      fc.record({
        kind: fc.constant("send" as const),
        type: fc.integer({ min: 1, max: 5 }),
        size: fc.integer({ min: 1, max: 40 }),
      }),
      fc.record({
        kind: fc.constant("receive" as const),
        type: fc.integer({ min: -5, max: 5 }),
        except: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(operation, { maxLength: 60 }),
        fc.integer({ min: 40, max: 200 }),
        (operations, capacity) => {
          using queue = MessageQueue.create();
          try {
            queue.setCapacity(capacity);
            const model: { type: number; data: string }[] = [];
            let bytes = 0;
            let sequence = 0;
            for (const op of operations) {
              if (op.kind === "send") {
                const data = String(sequence++).padEnd(op.size, ".");
                const fits = bytes + data.length <= capacity;
                assert.equal(
                  queue.trySend(op.type, data),
                  fits,
                  "a send waited although there was room",
                );
                if (fits) model.push({ type: op.type, data }), bytes += data.length;
              } else {
                const except = op.except && op.type > 0;
                const index = select(model, op.type, except);
                const message = queue.tryReceive({ type: op.type, except });
                if (index === -1) {
                  assert.equal(message, undefined);
                } else {
                  const [expected] = model.splice(index, 1);
                  bytes -= expected.data.length;
                  assert.deepEqual([message?.type, message?.text()], [
                    expected.type,
                    expected.data,
                  ]);
                }
              }
              const stats = queue.stats();
              assert.deepEqual([stats.messages, stats.bytes], [model.length, bytes]);
            }
          } finally {
            queue.remove();
          }
        },
      ),
      { numRuns: propertyRuns(60) },
    );
  },
);

ipcTest(
  "PosixMessageQueue: random sends and receives give the highest priority first, FIFO within one",
  () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant("send" as const), priority: fc.integer({ min: 0, max: 4 }) }),
      fc.record({ kind: fc.constant("receive" as const) }),
    );
    fc.assert(
      fc.property(
        fc.array(operation, { maxLength: 60 }),
        fc.integer({ min: 1, max: 10 }),
        (operations, maxMessages) => {
          using queue = PosixMessageQueue.create({
            name: testName("mq"),
            maxMessages,
            messageSize: 64,
          });
          try {
            const model: { priority: number; data: string }[] = [];
            let sequence = 0;
            for (const op of operations) {
              if (op.kind === "send") {
                const data = `m${sequence++}`;
                const fits = model.length < maxMessages;
                assert.equal(queue.trySend(data, { priority: op.priority }), fits);
                if (fits) model.push({ priority: op.priority, data });
              } else {
                const message = queue.tryReceive();
                if (model.length === 0) {
                  assert.equal(message, undefined);
                  continue;
                }
                const highest = Math.max(...model.map((m) => m.priority));
                const [expected] = model.splice(model.findIndex((m) => m.priority === highest), 1);
                assert.deepEqual([message?.type, message?.text()], [
                  expected.priority,
                  expected.data,
                ]);
              }
              assert.equal(queue.attributes().currentMessages, model.length);
            }
          } finally {
            queue.unlink();
          }
        },
      ),
      { numRuns: propertyRuns(60) },
    );
  },
);

ipcTest(
  "MessageQueue across processes: every message reaches, once, the receiver that asked for its type",
  async () => {
    const sender = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 30 });
    await fc.assert(
      fc.asyncProperty(fc.array(sender, { minLength: 1, maxLength: 3 }), async (senders) => {
        using queue = MessageQueue.create();
        try {
          queue.setCapacity(256); // small, so senders also wait for room
          const counts = [1, 2, 3].map((type) => senders.flat().filter((t) => t === type).length);
          const receivers = [1, 2, 3].map((type) =>
            run(["receive", String(queue.id), String(type), String(counts[type - 1])])
          );
          await Promise.all(
            senders.map((types) => run(["send", String(queue.id), types.join(",")])),
          );
          const received = (await Promise.all(receivers)).map((out) => JSON.parse(out) as string[]);
          const all = received.flat();
          assert.equal(new Set(all).size, all.length, "a message was delivered twice");
          assert.equal(all.length, senders.flat().length, "a message was lost");
          assert.equal(queue.stats().messages, 0);
        } finally {
          queue.remove();
        }
      }),
      { numRuns: propertyRuns(3) },
    );
  },
);

ipcTest(
  "MessageQueue: a receiver waiting on a queue another process removes gets QueueRemovedError",
  async () => {
    using queue = MessageQueue.create();
    // The assertion is attached now: the rejection comes while the child still runs.
    const waiting = assert.rejects(
      queue.receive({ timeout: 10_000 }),
      (e: unknown) =>
        e instanceof QueueRemovedError && e.code === "EIDRM" &&
        /removed/.test((e as Error).message),
    );
    await delay(20);
    await run(["remove", String(queue.id)]);
    await waiting;
    assert.throws(() => queue.trySend(1, "x"), QueueRemovedError);
  },
);

ipcTest(
  "MessageQueue: send waits for room; timed receive expires; stats name the last sender",
  async () => {
    using queue = MessageQueue.create({ mode: 0o640 });
    try {
      queue.setCapacity(10);
      assert.equal(queue.trySend(7, "12345678"), true);
      assert.equal(queue.trySend(7, "abc"), false);
      await assert.rejects(queue.send(7, "abc", { timeout: 20 }), TimedOutError);
      const sending = queue.send(7, "abc", { timeout: 5000 });
      assert.equal(queue.tryReceive()?.text(), "12345678");
      await sending;
      const stats = queue.stats();
      assert.deepEqual(
        [
          stats.messages,
          stats.bytes,
          stats.capacity,
          stats.mode,
          stats.lastSendPid,
          stats.lastReceivePid,
        ],
        [1, 3, 10, 0o640, Deno.pid, Deno.pid],
      );
      assert.ok(stats.lastSendTime instanceof Date);
      await queue.receive();
      await assert.rejects(queue.receive({ timeout: 20 }), TimedOutError);
      await assert.rejects(queue.receive({ signal: AbortSignal.abort() }), { name: "AbortError" });
      await assert.rejects(
        queue.send(1, "more than ten bytes"),
        (e: unknown) => e instanceof RangeError && /can never fit/.test(e.message),
      );
      queue.setCapacity(100);
      await queue.sendJson(2, { ok: true }, { timeout: 1000 });
      assert.deepEqual((await queue.receive({ type: -3, timeout: 1000 })).json(), { ok: true });
    } finally {
      queue.remove();
    }
  },
);

ipcTest("MessageQueue: a too small receive is E2BIG unless truncate is asked for", () => {
  using queue = MessageQueue.create();
  try {
    queue.trySend(1, "hello world");
    assert.throws(
      () => queue.tryReceive({ maxSize: 5 }),
      (e: unknown) => e instanceof ErrnoError && e.code === "E2BIG" && /truncate/.test(e.message),
    );
    assert.equal(queue.stats().messages, 1, "the message stays in the queue");
    assert.equal(queue.tryReceive({ maxSize: 5, truncate: true })?.text(), "hello");
  } finally {
    queue.remove();
  }
});

ipcTest(
  "MessageQueue keys: ftok paths, explicit keys, exclusive create, open of a missing key",
  () => {
    const directory = Deno.makeTempDirSync();
    try {
      const key = MessageQueue.keyFromPath(directory, 7);
      assert.equal(key, MessageQueue.keyFromPath(directory, 7));
      assert.notEqual(key, MessageQueue.keyFromPath(directory, 8));
      using created = MessageQueue.create({ path: directory, projectId: 7 });
      try {
        assert.equal(created.key, key);
        assert.throws(() => MessageQueue.create({ key }), AlreadyExistsError);
        using opened = MessageQueue.open({ path: directory, projectId: 7 });
        using again = MessageQueue.openOrCreate({ key });
        assert.deepEqual([opened.id, again.id], [created.id, created.id]);
      } finally {
        created.remove();
      }
      assert.throws(() => MessageQueue.open({ key }), NotFoundError);
      assert.throws(() => MessageQueue.keyFromPath(`${directory}/missing`), NotFoundError);
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
);

const badQueueCalls: [
  string,
  (q: MessageQueue) => unknown,
  typeof TypeError | typeof RangeError,
][] = [
  ["type 0 on send", (q) => q.trySend(0, "x"), RangeError],
  ["a negative type on send", (q) => q.trySend(-1, "x"), RangeError],
  ["a fractional type", (q) => q.trySend(1.5, "x"), RangeError],
  [
    "a payload over msgmax",
    (q) => q.trySend(1, new Uint8Array(MessageQueue.maxMessageSize + 1)),
    RangeError,
  ],
  // deno-lint-ignore no-explicit-any
  ["a payload that is a number", (q) => q.trySend(1, 5 as any), TypeError],
  ["except with type 0", (q) => q.tryReceive({ type: 0, except: true }), RangeError],
  ["a negative maxSize", (q) => q.tryReceive({ maxSize: -1 }), RangeError],
  [
    "a maxSize over msgmax",
    (q) => q.tryReceive({ maxSize: MessageQueue.maxMessageSize + 1 }),
    RangeError,
  ],
  ["capacity 0", (q) => q.setCapacity(0), RangeError],
];

for (const [why, call, ErrorClass] of badQueueCalls) {
  ipcTest(`MessageQueue rejects ${why} before any syscall, keeping what was sent`, () => {
    using queue = MessageQueue.create();
    try {
      queue.trySend(3, "kept");
      assert.throws(() => call(queue), ErrorClass);
      assert.equal(queue.tryReceive()?.text(), "kept");
    } finally {
      queue.remove();
    }
  });
}

ipcTest("MessageQueue rejects bad keys and modes; after close() it is ClosedError", async () => {
  assert.throws(() => MessageQueue.create({ key: 0 }), RangeError);
  assert.throws(() => MessageQueue.create({ key: 1, path: "/tmp" }), TypeError);
  assert.throws(() => MessageQueue.create({ projectId: 1 }), TypeError);
  assert.throws(() => MessageQueue.open({}), TypeError);
  assert.throws(() => MessageQueue.keyFromPath("/tmp", 0), RangeError);
  assert.throws(() => MessageQueue.keyFromPath("/tmp", 256), RangeError);
  assert.throws(() => MessageQueue.create({ mode: 0o1000 }), RangeError);
  const queue = MessageQueue.create();
  try {
    queue.close();
    queue.close();
    assert.throws(() => queue.trySend(1, "x"), ClosedError);
    await assert.rejects(queue.receive(), ClosedError);
    assert.throws(() => queue.stats(), ClosedError);
  } finally {
    MessageQueue.fromId(queue.id).remove();
  }
});

ipcTest("PosixMessageQueue: defaults, exclusive create, waits, limits and bad input", async () => {
  const name = testName("mq");
  using queue = PosixMessageQueue.create({ name });
  try {
    assert.deepEqual(queue.attributes(), {
      maxMessages: 10,
      messageSize: 8192,
      currentMessages: 0,
    });
    assert.throws(() => PosixMessageQueue.create({ name }), AlreadyExistsError);
    using other = PosixMessageQueue.open({ name });
    await assert.rejects(other.receive({ timeout: 20 }), TimedOutError);
    const receiving = other.receive({ timeout: 5000 });
    await delay(10);
    await queue.send("wake up", { priority: 3 });
    const message = await receiving;
    assert.deepEqual([message.type, message.text()], [3, "wake up"]);
    for (let i = 0; i < 10; i++) assert.equal(queue.trySend(`${i}`), true);
    await assert.rejects(queue.send("full", { timeout: 20 }), TimedOutError);
    assert.throws(() => queue.trySend("x", { priority: 32768 }), RangeError);
    assert.throws(() => queue.trySend(new Uint8Array(8193)), RangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => queue.trySend(42 as any), TypeError);
    assert.equal(queue.attributes().currentMessages, 10);
  } finally {
    queue.unlink();
  }
  assert.throws(() => PosixMessageQueue.open({ name }), NotFoundError);
  assert.throws(() => PosixMessageQueue.unlink(name), NotFoundError);
  assert.throws(
    () => PosixMessageQueue.create({ name, maxMessages: 1 << 20 }),
    (e: unknown) =>
      e instanceof ErrnoError && e.code === "EINVAL" && e.message.includes("/proc/sys/fs/mqueue"),
  );
  assert.throws(() => PosixMessageQueue.create({ name: "no-slash" }), TypeError);
  assert.throws(() => PosixMessageQueue.create({ name, maxMessages: 0 }), RangeError);
  const closed = PosixMessageQueue.create({ name });
  closed.close();
  closed.close();
  assert.throws(() => closed.tryReceive(), ClosedError);
  PosixMessageQueue.unlink(name);
});

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ClosedError,
  DeadNameError,
  MACH_NOTIFY,
  type MachMessage,
  MessageTooLargeError,
  NotifyInProgressError,
  OutOfLineMemory,
  PortSet,
  QueueFullError,
  ReceivedMemory,
  ReceiveRight,
  SendOnceRight,
  SendRight,
  TimedOutError,
} from "../mod.ts";
import { libc } from "../ffi/libc.ts";
import { Child, delay, ipcTest, propertyRuns } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function spawnWith(
  token: { token: string } & Disposable,
  args: string[],
  env?: Record<string, string>,
): Child {
  try {
    return new Child("mach_child.ts", [args[0], token.token, ...args.slice(1)], ["-A"], env);
  } finally {
    token[Symbol.dispose]();
  }
}

async function receiveAll(port: ReceiveRight, count: number): Promise<MachMessage[]> {
  const messages: MachMessage[] = [];
  for (let i = 0; i < count; i++) messages.push(await port.receive({ timeout: 10_000 }));
  return messages;
}

ipcTest("Mach port: a message carries its id, body and the kernel's sender pid", async () => {
  using port = ReceiveRight.allocate({ label: "echo" });
  using send = port.makeSend();
  assert.equal(await send.send({ id: -5, body: encoder.encode("hello") }), "sent");
  using message = await port.receive({ timeout: 1000 });
  assert.equal(message.id, -5);
  assert.equal(decoder.decode(message.body), "hello");
  assert.deepEqual(message.sender, { pid: Deno.pid, uid: Deno.uid(), gid: Deno.gid() });
  assert.equal(message.notification, undefined);
  assert.equal(message.sequence, 0);
});

ipcTest(
  "Mach port: a send right given to a child sends, and the kernel names the child as sender, whatever the body claims",
  async () => {
    using port = ReceiveRight.allocate();
    using send = port.makeSend();
    await using child = spawnWith(send.inheritable(), ["send", "3", "100"]);
    assert.equal(await child.line(), "sent");
    const messages = await receiveAll(port, 3);
    assert.deepEqual(messages.map((m) => m.id), [100, 101, 102]);
    for (const message of messages) {
      const claim = JSON.parse(decoder.decode(message.body));
      assert.equal(claim.claimedPid, 1);
      assert.equal(message.sender?.pid, child.process.pid);
      assert.notEqual(message.sender?.pid, claim.claimedPid);
      message[Symbol.dispose]();
    }
    assert.equal((await child.status()).code, 0);
  },
);

ipcTest(
  "Mach port: a process that knows the holder's pid and descriptor numbers but holds no right cannot reach the port",
  async () => {
    using port = ReceiveRight.allocate();
    using _send = port.makeSend();
    // The sockets of the port, as numbers in this process: the receive end and a send end.
    const sockets = Array.from(Deno.readDirSync("/proc/self/fd"))
      .map((entry) => entry.name)
      .filter((fd) => {
        try {
          return Deno.readLinkSync(`/proc/self/fd/${fd}`).startsWith("socket:");
        } catch {
          return false;
        }
      });
    assert.ok(sockets.length >= 2);
    await using forger = new Child("mach_child.ts", ["forge", String(Deno.pid), ...sockets]);
    const report = JSON.parse(await forger.line()) as Record<string, string>;
    for (const fd of sockets) assert.notEqual(report[fd], "opened", `socket ${fd} was opened`);
    // Nothing arrived from the forger.
    assert.equal(port.tryReceive(), undefined);
    assert.equal((await forger.status()).code, 0);
  },
);

ipcTest(
  "Mach port: the queue holds at most its limit; timeout 0 fails at once, timeout N after waiting, no timeout waits for room",
  async () => {
    using port = ReceiveRight.allocate();
    assert.equal(port.queueLimit, 5);
    using send = port.makeSend();
    for (let i = 0; i < 5; i++) assert.equal(send.trySend({ id: i }), "sent");
    assert.equal(port.queued, 5);
    assert.equal(send.trySend({ id: 5 }), "full");
    await assert.rejects(send.send({ id: 5 }, { timeout: 0 }), QueueFullError);
    await assert.rejects(send.send({ id: 5 }, { timeout: 30 }), QueueFullError);
    assert.equal(port.queued, 5);
    const waiting = send.send({ id: 5 });
    let settled = false;
    waiting.then(() => settled = true);
    await delay(20);
    assert.equal(settled, false);
    (await port.receive()).id;
    assert.equal(await waiting, "sent");
    const ids = (await receiveAll(port, 5)).map((m) => m.id);
    assert.deepEqual(ids, [1, 2, 3, 4, 5]);
    port.setQueueLimit(1);
    assert.equal(send.trySend({ id: 6 }), "sent");
    assert.equal(send.trySend({ id: 7 }), "full");
    port.tryReceive();
  },
);

ipcTest(
  "Mach port: a cached send queues beyond the limit, a second reports notify in progress, msg-accepted comes once the queue has room for it",
  async () => {
    using port = ReceiveRight.allocate({ queueLimit: 2, label: "server" });
    using client = ReceiveRight.allocate({ label: "client" });
    using notify = client.makeSend();
    using send = port.makeSend();
    send.trySend({ id: 1 });
    send.trySend({ id: 2 });
    assert.equal(await send.send({ id: 3 }, { notify }), "will-notify");
    assert.equal(port.queued, 2); // the cached message is beyond the counted queue
    await assert.rejects(send.send({ id: 4 }, { notify, timeout: 0 }), NotifyInProgressError);
    assert.throws(() => send.trySend({ id: 4 }, { notify }), NotifyInProgressError);
    assert.equal(client.tryReceive(), undefined);
    assert.equal((await port.receive({ timeout: 1000 })).id, 1);
    // Room for one: the cached message is put in the queue, and its sender is told.
    assert.equal(port.queued, 2);
    using accepted = await client.receive({ timeout: 1000 });
    assert.equal(accepted.notification, "msg-accepted");
    assert.equal(accepted.id, MACH_NOTIFY.MSG_ACCEPTED);
    assert.equal(accepted.sender?.pid, Deno.pid);
    assert.equal(send.trySend({ id: 4 }), "full");
    // The sender may cache another now.
    assert.equal(send.trySend({ id: 5 }, { notify }), "will-notify");
    assert.deepEqual((await receiveAll(port, 3)).map((m) => m.id), [2, 3, 5]);
    using second = await client.receive({ timeout: 1000 });
    assert.equal(second.notification, "msg-accepted");
    assert.equal(client.tryReceive(), undefined, "one notification per cached message");
    assert.equal(port.queued, 0);
  },
);

ipcTest("Mach port: messages sent through send-once rights ignore the queue limit", async () => {
  using port = ReceiveRight.allocate({ queueLimit: 1 });
  using send = port.makeSend();
  send.trySend({ id: 1 });
  assert.equal(send.trySend({ id: 2 }), "full");
  for (let i = 0; i < 3; i++) await port.makeSendOnce().send({ id: 10 + i });
  assert.deepEqual((await receiveAll(port, 4)).map((m) => m.id), [1, 10, 11, 12]);
});

ipcTest(
  "Mach port: a too-large message stays queued with large: true and is destroyed without it",
  async () => {
    using port = ReceiveRight.allocate();
    using send = port.makeSend();
    using other = ReceiveRight.allocate();
    other.requestNoSenders();
    await send.send({ id: 1, body: new Uint8Array(100), rights: [{ makeSend: other }] });
    await send.send({ id: 2, body: new Uint8Array(100) });
    await send.send({ id: 3, body: new Uint8Array(10) });
    const error = await assert.rejects(port.receive({ maxSize: 50, large: true }), (e) => {
      assert.ok(e instanceof MessageTooLargeError);
      assert.equal(e.size, 100);
      assert.equal(e.stillQueued, true);
      return true;
    });
    void error;
    using first = await port.receive({ maxSize: 100 });
    assert.equal(first.id, 1);
    assert.equal(first.rights.length, 1);
    await assert.rejects(port.receive({ maxSize: 50 }), MessageTooLargeError);
    using third = await port.receive({ maxSize: 50 });
    assert.equal(third.id, 3);
    first[Symbol.dispose]();
    // The right carried by message 1 is gone now: its port sees no senders.
    assert.equal((await other.receive({ timeout: 1000 })).notification, "no-senders");
  },
);

ipcTest(
  "Mach port: receive polls with timeout 0, times out, and stops on abort or close",
  async () => {
    using port = ReceiveRight.allocate();
    assert.equal(port.tryReceive(), undefined);
    await assert.rejects(port.receive({ timeout: 0 }), TimedOutError);
    await assert.rejects(port.receive({ timeout: 20 }), TimedOutError);
    const controller = new AbortController();
    const aborted = port.receive({ signal: controller.signal });
    controller.abort(new Error("stop"));
    await assert.rejects(aborted, /stop/);
    const closing = port.receive();
    port.close();
    await assert.rejects(closing, ClosedError);
    await port.released;
  },
);

ipcTest(
  "Mach port: the reply pattern, and a reply right destroyed unused yields a send-once notification",
  async () => {
    using server = ReceiveRight.allocate({ label: "server" });
    using client = ReceiveRight.allocate({ label: "client" });
    using toServer = server.makeSend();
    await toServer.send({ id: 1, reply: { makeSendOnce: client } });
    await toServer.send({ id: 2, reply: { makeSendOnce: client } });
    using first = await server.receive({ timeout: 1000 });
    assert.ok(first.reply instanceof SendOnceRight);
    await first.reply.send({ id: 101 });
    await assert.rejects(first.reply.send({ id: 102 }), ClosedError);
    using second = await server.receive({ timeout: 1000 });
    second.reply!.close();
    using reply = await client.receive({ timeout: 1000 });
    assert.equal(reply.id, 101);
    assert.equal(reply.sender?.pid, Deno.pid);
    using notification = await client.receive({ timeout: 1000 });
    assert.equal(notification.notification, "send-once");
    assert.equal(notification.id, MACH_NOTIFY.SEND_ONCE);
    assert.equal(client.tryReceive(), undefined, "exactly one message per send-once right");
  },
);

ipcTest(
  "Mach port: no-senders comes when the last send right, in any process, is gone",
  async () => {
    using port = ReceiveRight.allocate();
    const send = port.makeSend();
    const copy = send.copy();
    port.requestNoSenders();
    await using child = spawnWith(copy.inheritable(), ["send", "1", "7"]);
    copy.close();
    send.close();
    assert.equal(await child.line(), "sent");
    assert.equal((await port.receive({ timeout: 5000 })).id, 7);
    assert.equal((await child.status()).code, 0);
    using notification = await port.receive({ timeout: 5000 });
    assert.equal(notification.notification, "no-senders");
  },
);

ipcTest(
  "Mach port: destroying the receive right makes dead names, fails a waiting sender and sends a dead-name notification",
  async () => {
    using watcher = ReceiveRight.allocate({ label: "watcher" });
    const port = ReceiveRight.allocate({ queueLimit: 1, label: "doomed" });
    using send = port.makeSend();
    send.requestDeadName(watcher);
    send.trySend({ id: 1 });
    const waiting = send.send({ id: 2 });
    await delay(20);
    port.close();
    await assert.rejects(waiting, DeadNameError);
    assert.equal(send.dead, true);
    await assert.rejects(send.send({ id: 3 }), DeadNameError);
    using notification = await watcher.receive({ timeout: 1000 });
    assert.equal(notification.notification, "dead-name");
    assert.equal(decoder.decode(notification.body), "doomed");
  },
);

ipcTest(
  "Mach port: a receiver killed with SIGKILL: send rights become dead names, a waiting sender fails, queued reply rights yield send-once notifications",
  async () => {
    using client = ReceiveRight.allocate({ label: "client" });
    const port = ReceiveRight.allocate({ queueLimit: 1, label: "victim" });
    using send = port.makeSend();
    const token = port.inheritable();
    await using receiver = spawnWith(token, ["hold-receive"]);
    assert.equal(await receiver.line(), "ready");
    assert.equal(send.trySend({ id: 1, reply: { makeSendOnce: client } }), "sent");
    await using blocked = spawnWith(send.inheritable(), ["blocked-send"]);
    assert.equal(await blocked.line(), "sending");
    await delay(50);
    receiver.process.kill("SIGKILL");
    await receiver.status();
    assert.equal(await blocked.line(), "DeadNameError");
    await assert.rejects(send.send({ id: 2 }), DeadNameError);
    using notification = await client.receive({ timeout: 5000 });
    assert.equal(notification.notification, "send-once");
  },
);

ipcTest(
  "Mach port: a server killed holding a request's reply right answers the client with a send-once notification",
  async () => {
    using client = ReceiveRight.allocate({ label: "client" });
    const port = ReceiveRight.allocate({ label: "server" });
    using send = port.makeSend();
    await using server = spawnWith(port.inheritable(), ["reply-server"]);
    assert.equal(await server.line(), "ready");
    await send.send({ id: 1, reply: { makeSendOnce: client } });
    assert.equal(await server.line(), "got");
    server.process.kill("SIGKILL");
    using answer = await client.receive({ timeout: 5000 });
    assert.equal(answer.notification, "send-once");
  },
);

ipcTest(
  "Mach port: a sender killed between claiming a slot and sending does not shrink the queue",
  async () => {
    using port = ReceiveRight.allocate({ queueLimit: 2 });
    using send = port.makeSend();
    send.trySend({ id: 1 });
    await using crashed = spawnWith(send.inheritable(), ["blocked-send"], {
      DENO_IPC_CRASH_AT: "mach.send.claimed",
    });
    assert.equal(await crashed.line(), "sending");
    const status = await crashed.process.status;
    assert.equal(status.signal, "SIGKILL");
    // The dead sender's slot is taken and its message never came.
    assert.equal(port.queued, 2);
    assert.equal(send.trySend({ id: 2 }), "full");
    assert.equal((await port.receive({ timeout: 1000 })).id, 1);
    // Looking for the next message finds the slot with no sender and no message.
    assert.equal(port.tryReceive(), undefined);
    assert.equal(port.queued, 0);
    assert.equal(send.trySend({ id: 3 }), "sent");
    assert.equal(send.trySend({ id: 4 }), "sent");
    assert.equal(send.trySend({ id: 5 }), "full");
    assert.deepEqual((await receiveAll(port, 2)).map((m) => m.id), [3, 4]);
  },
);

ipcTest(
  "Mach port: several sending processes: every message arrives exactly once, each sender's in order, the queue never above its limit",
  async () => {
    using port = ReceiveRight.allocate({ queueLimit: 3 });
    using send = port.makeSend();
    const senders = 3;
    const count = 40;
    const children: Child[] = [];
    try {
      for (let s = 0; s < senders; s++) {
        children.push(spawnWith(send.inheritable(), ["send", String(count), String(s * 1000)]));
      }
      const seen = new Map<number, number[]>();
      for (let i = 0; i < senders * count; i++) {
        assert.ok(port.queued <= 3, `queue at ${port.queued}`);
        using message = await port.receive({ timeout: 20_000 });
        const pid = message.sender!.pid;
        seen.set(pid, [...(seen.get(pid) ?? []), message.id]);
      }
      assert.equal(seen.size, senders);
      for (const ids of seen.values()) {
        const base = ids[0];
        assert.deepEqual(ids, Array.from({ length: count }, (_, i) => base + i));
      }
      assert.equal(port.tryReceive(), undefined);
    } finally {
      for (const child of children) await child[Symbol.asyncDispose]();
    }
  },
);

ipcTest(
  "Mach port: rights in messages: copySend keeps the right, moveSend consumes it, makeSend gives the receiver a working right",
  async () => {
    using port = ReceiveRight.allocate();
    using target = ReceiveRight.allocate({ label: "target" });
    using send = port.makeSend();
    using kept = target.makeSend();
    const moved = target.makeSend();
    await send.send({
      id: 1,
      rights: [{ copySend: kept }, { moveSend: moved }, { makeSend: target }],
    });
    assert.equal(kept.closed, false);
    assert.equal(moved.closed, true);
    assert.throws(() => moved.copy(), ClosedError);
    await assert.rejects(send.send({ id: 2, rights: [{ moveSend: moved }] }), ClosedError);
    using message = await port.receive({ timeout: 1000 });
    assert.equal(message.rights.length, 3);
    for (const [i, right] of message.rights.entries()) {
      assert.ok(right instanceof SendRight);
      await right.send({ id: 10 + i });
    }
    assert.deepEqual((await receiveAll(target, 3)).map((m) => m.id), [10, 11, 12]);
  },
);

ipcTest("Mach port: bad arguments are TypeError or RangeError before any syscall", async () => {
  assert.throws(() => ReceiveRight.allocate({ queueLimit: 0 }), RangeError);
  assert.throws(() => ReceiveRight.allocate({ queueLimit: 1025 }), RangeError);
  assert.throws(() => ReceiveRight.allocate({ queueLimit: 2.5 }), RangeError);
  assert.throws(() => ReceiveRight.allocate({ label: 5 as unknown as string }), TypeError);
  using port = ReceiveRight.allocate();
  using send = port.makeSend();
  assert.throws(() => port.setQueueLimit(0), RangeError);
  await assert.rejects(send.send({ id: 1.5 }), RangeError);
  await assert.rejects(send.send({ id: 2 ** 31 }), RangeError);
  await assert.rejects(send.send({} as never), TypeError);
  await assert.rejects(send.send({ id: 1, body: "text" as never }), TypeError);
  await assert.rejects(send.send({ id: 1, body: new Uint8Array(65_537) }), RangeError);
  await assert.rejects(send.send({ id: 1, rights: [{ copySend: port }] as never }), TypeError);
  await assert.rejects(send.send({ id: 1, rights: [{ steal: send }] as never }), TypeError);
  await assert.rejects(send.send({ id: 1 }, { timeout: -1 }), RangeError);
  await assert.rejects(send.send({ id: 1 }, { notify: port as never }), TypeError);
  await assert.rejects(port.receive({ maxSize: -1 }), RangeError);
  await assert.rejects(port.receive({ large: 1 as never }), TypeError);
  assert.throws(() => SendRight.fromInherited("send:1,2:x"), RangeError);
  assert.throws(() => SendRight.fromInherited("nonsense"), TypeError);
  assert.equal(port.tryReceive(), undefined, "nothing was sent");
  send.close();
  send.close();
  await assert.rejects(send.send({ id: 1 }), ClosedError);
  port.close();
  assert.throws(() => port.makeSend(), ClosedError);
});

ipcTest(
  "Mach port: out-of-line memory arrives as the receiver's own copy-on-write mapping, and sending takes the region",
  async () => {
    using port = ReceiveRight.allocate();
    using send = port.makeSend();
    const region = OutOfLineMemory.allocate(2 ** 20 + 3);
    region.bytes.fill(0xab);
    region.bytes[2 ** 20 + 2] = 1;
    const second = OutOfLineMemory.from(encoder.encode("second region"));
    await send.send({ id: 1, memory: [region, second] });
    assert.equal(region.closed, true);
    assert.throws(() => region.bytes, ClosedError);
    await assert.rejects(send.send({ id: 2, memory: [region] }), ClosedError);
    const message = await port.receive({ timeout: 1000 });
    assert.equal(message.memory.length, 2);
    const [big, small] = message.memory;
    assert.ok(big instanceof ReceivedMemory);
    assert.equal(big.size, 2 ** 20 + 3);
    assert.equal(big.bytes[0], 0xab);
    assert.equal(big.bytes[2 ** 20 + 2], 1);
    big.bytes[0] = 0; // the receiver's copy is writable
    assert.equal(decoder.decode(small.bytes), "second region");
    const bytes = big.bytes;
    message[Symbol.dispose]();
    // Unmapped: the view is detached, never a crash.
    assert.equal(bytes.length, 0);
    assert.throws(() => OutOfLineMemory.allocate(0), RangeError);
    await assert.rejects(send.send({ id: 3, memory: [new Uint8Array(4)] as never }), TypeError);
  },
);

ipcTest(
  "Mach port: moveReceive hands the port on: queued messages and send rights survive the move",
  async () => {
    using carrier = ReceiveRight.allocate({ label: "carrier" });
    using toCarrier = carrier.makeSend();
    const moving = ReceiveRight.allocate({ label: "moving" });
    using send = moving.makeSend();
    await send.send({ id: 1 });
    await send.send({ id: 2 });
    await toCarrier.send({ id: 100, rights: [{ moveReceive: moving }] });
    assert.equal(moving.closed, true);
    assert.throws(() => moving.makeSend(), ClosedError);
    assert.equal(send.dead, false);
    using envelope = await carrier.receive({ timeout: 1000 });
    const [moved] = envelope.rights;
    assert.ok(moved instanceof ReceiveRight);
    await send.send({ id: 3 });
    assert.deepEqual((await receiveAll(moved, 3)).map((m) => m.id), [1, 2, 3]);
    moved.close();
    assert.equal(send.dead, true);
    // A port with messages drained into this process cannot move.
    using busy = ReceiveRight.allocate();
    using _toBusy = busy.makeSendOnce();
    await assert.rejects(toCarrier.send({ id: 101, rights: [{ moveReceive: busy }] }), TypeError);
    assert.equal(busy.closed, false);
  },
);

ipcTest(
  "Mach port set: receives from any member, takes members in turn, names the member, and waits across all",
  async () => {
    using a = ReceiveRight.allocate({ label: "a" });
    using b = ReceiveRight.allocate({ label: "b" });
    using set = PortSet.allocate();
    set.add(a);
    set.add(b);
    set.add(a);
    assert.equal(set.members.length, 2);
    using toA = a.makeSend();
    using toB = b.makeSend();
    for (let i = 0; i < 3; i++) {
      toA.trySend({ id: i });
      toB.trySend({ id: 10 + i });
    }
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { port, message } = await set.receive({ timeout: 1000 });
      order.push(`${port.label}${message.id}`);
    }
    assert.deepEqual(order, ["a0", "b10", "a1", "b11", "a2", "b12"]);
    assert.equal(set.tryReceive(), undefined);
    const waiting = set.receive({ timeout: 5000 });
    await delay(20);
    await toB.send({ id: 99 });
    const { port, message } = await waiting;
    assert.equal(port, b);
    assert.equal(message.id, 99);
    assert.equal(set.remove(b), true);
    b.close();
    await assert.rejects(set.receive({ timeout: 10 }), TimedOutError);
    assert.throws(() => set.add(b), ClosedError);
    assert.throws(() => set.add({} as never), TypeError);
  },
);

ipcTest(
  "Mach port: a receiver killed at a random moment: every sending process, waiting or not, gets DeadNameError",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 2, max: 3 }),
        fc.integer({ min: 0, max: 200 }),
        async (limit, senders, killAfter) => {
          const port = ReceiveRight.allocate({ queueLimit: limit });
          using send = port.makeSend();
          const children: Child[] = [];
          try {
            const receiver = spawnWith(port.inheritable(), ["slow-receive"]);
            children.push(receiver);
            assert.equal(await receiver.line(), "ready");
            for (let i = 0; i < senders; i++) {
              const child = spawnWith(send.inheritable(), ["send-until-dead"]);
              children.push(child);
              assert.equal(await child.line(), "sending");
            }
            await delay(killAfter);
            receiver.process.kill("SIGKILL");
            await receiver.status();
            for (const [i, child] of children.slice(1).entries()) {
              const outcome = await child.line();
              assert.equal(outcome, "DeadNameError", `sender ${i} (limit ${limit}): ${outcome}`);
              assert.equal((await child.status()).code, 0);
            }
            assert.equal(send.dead, true);
          } finally {
            for (const child of children) await child[Symbol.asyncDispose]();
          }
        },
      ),
      { numRuns: propertyRuns(3) },
    );
  },
);

ipcTest(
  "Mach port: random senders and limits: every message exactly once, each sender's in order, never above the limit",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 2, maxLength: 3 }),
        async (limit, counts) => {
          using port = ReceiveRight.allocate({ queueLimit: limit });
          using send = port.makeSend();
          const children = counts.map((count, s) =>
            spawnWith(send.inheritable(), ["send", String(count), String(s * 1000)])
          );
          try {
            const seen = new Map<number, number[]>();
            for (let i = 0; i < counts.reduce((a, b) => a + b, 0); i++) {
              assert.ok(port.queued <= limit, `queue at ${port.queued} over ${limit}`);
              using message = await port.receive({ timeout: 20_000 });
              const ids = seen.get(message.id - (message.id % 1000)) ?? [];
              ids.push(message.id % 1000);
              seen.set(message.id - (message.id % 1000), ids);
            }
            counts.forEach((count, s) => {
              assert.deepEqual(seen.get(s * 1000), Array.from({ length: count }, (_, i) => i));
            });
            assert.equal(port.tryReceive(), undefined);
          } finally {
            for (const child of children) await child[Symbol.asyncDispose]();
          }
        },
      ),
      { numRuns: propertyRuns(3) },
    );
  },
);

ipcTest(
  "Mach port: a sealed region is sent as a copy any number of times; the sender's writes stay its own",
  async () => {
    using port = ReceiveRight.allocate();
    using send = port.makeSend();
    using region = OutOfLineMemory.allocate(8192);
    region.bytes.fill(5);
    region.seal();
    assert.equal(region.sealed, true);
    await send.send({ id: 1, memory: [region] });
    await send.send({ id: 2, memory: [region] });
    assert.equal(region.closed, false);
    region.bytes[0] = 9; // the sender's copy-on-write view
    using first = await port.receive({ timeout: 1000 });
    using second = await port.receive({ timeout: 1000 });
    for (const message of [first, second]) {
      assert.equal(message.memory[0].bytes[0], 5);
      assert.equal(message.memory[0].bytes[8191], 5);
    }
    first.memory[0].bytes[1] = 7; // each receiver's own copy
    assert.equal(second.memory[0].bytes[1], 5);
  },
);

ipcTest(
  "Mach port: a send that fails after claiming a slot gives the slot back at once",
  async () => {
    using port = ReceiveRight.allocate({ queueLimit: 1 });
    using send = port.makeSend();
    using busy = ReceiveRight.allocate();
    using _pending = busy.makeSendOnce(); // makes `busy` unmovable
    await assert.rejects(send.send({ id: 1, rights: [{ moveReceive: busy }] }), TypeError);
    assert.throws(() => send.trySend({ id: 1, rights: [{ moveReceive: busy }] }), TypeError);
    assert.equal(port.queued, 0);
    assert.equal(send.trySend({ id: 2 }), "sent");
    assert.equal((await port.receive({ timeout: 1000 })).id, 2);
  },
);

ipcTest(
  "Mach port: a message that moves a receive right cannot also make a send-once right from it (whose notification would be lost)",
  async () => {
    using carrier = ReceiveRight.allocate({ label: "carrier" });
    using toCarrier = carrier.makeSend();
    using moving = ReceiveRight.allocate({ label: "moving" });
    try {
      await assert.rejects(
        toCarrier.send({ id: 1, rights: [{ moveReceive: moving }, { makeSendOnce: moving }] }),
        TypeError,
      );
      assert.equal(moving.closed, false);
      assert.equal(carrier.tryReceive(), undefined, "nothing was sent");
    } finally {
      // Had it gone out: the moved port must still yield the send-once notification.
      const envelope = carrier.tryReceive();
      if (envelope !== undefined) {
        using _envelope = envelope;
        const moved = envelope.rights.find((right) => right instanceof ReceiveRight);
        envelope.rights.find((right) => right instanceof SendOnceRight)?.close();
        if (moved instanceof ReceiveRight) {
          await assert.rejects(moved.receive({ timeout: 200 }), TimedOutError);
        }
      }
    }
  },
);

ipcTest(
  "Mach port: an inherited-right token with a malformed label is a TypeError before its descriptors are touched",
  () => {
    const { symbols } = libc();
    const pipe = new Int32Array(2);
    symbols.pipe2(new Uint8Array(pipe.buffer), 0);
    try {
      const token = `send:${pipe[0]},${pipe[1]},${pipe[1]}:%E0%A4%A`;
      assert.throws(() => SendRight.fromInherited(token), TypeError);
      assert.equal(symbols.fcntl(pipe[0], 1, /* F_GETFD */ 0), 0, "close-on-exec was set");
    } finally {
      symbols.close(pipe[0]);
      symbols.close(pipe[1]);
    }
  },
);

ipcTest(
  "Mach port: a send-once right cannot travel inside the message it sends (it would yield a second message)",
  async () => {
    using port = ReceiveRight.allocate({ label: "replies" });
    const once = port.makeSendOnce();
    try {
      await assert.rejects(once.send({ id: 1, rights: [{ moveSendOnce: once }] }), TypeError);
      await assert.rejects(once.send({ id: 1, reply: { moveSendOnce: once } }), TypeError);
      assert.equal(once.closed, false);
    } finally {
      once.close();
    }
    // Whatever happened, the right yielded exactly one message here.
    const messages: MachMessage[] = [];
    for (let i = 0; i < 3; i++) {
      using message = port.tryReceive();
      if (message === undefined) break;
      messages.push(message);
      for (const right of message.rights) {
        if (right instanceof SendOnceRight) await right.send({ id: 2 }).catch(() => {});
      }
    }
    assert.equal(messages.length, 1);
    assert.equal(messages[0].notification, "send-once");
  },
);

ipcTest("Mach port: an empty region for OutOfLineMemory.from is a RangeError naming bytes", () => {
  assert.throws(
    () => OutOfLineMemory.from(new Uint8Array(0)),
    (error) => error instanceof RangeError && error.message.includes("bytes"),
  );
});

ipcTest(
  "Mach port: a receive right with a no-senders request pending does not move (the request would be lost)",
  async () => {
    using carrier = ReceiveRight.allocate({ label: "carrier" });
    using toCarrier = carrier.makeSend();
    using port = ReceiveRight.allocate({ label: "watched" });
    port.requestNoSenders();
    try {
      await assert.rejects(toCarrier.send({ id: 1, rights: [{ moveReceive: port }] }), TypeError);
      assert.throws(() => port.inheritable(), TypeError);
      assert.equal(port.closed, false);
    } finally {
      carrier.tryReceive()?.[Symbol.dispose]();
    }
    // The request is still here: no send right exists, so it comes at once.
    using notification = await port.receive({ timeout: 1000 });
    assert.equal(notification.notification, "no-senders");
  },
);

// Mailbox semantics under random interleavings (fast-check), in three forms: async tasks
// stepped by fc.scheduler() over separate handles, model-based command sequences per
// capacity kind, and real sender and receiver processes.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DirectEndpoint,
  Mailbox,
  type MailboxCapacity,
  type MailboxMessage,
  TimedOutError,
} from "../mod.ts";
import { Child, ipcTest, propertyRuns, testName } from "./_helpers.ts";

const capacityKind: fc.Arbitrary<MailboxCapacity> = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1, max: 3 }),
  fc.constant("unbounded" as const),
);

function bound(capacity: MailboxCapacity): number {
  return capacity === "unbounded" ? Infinity : Math.max(capacity, 1);
}

ipcTest(
  "mailbox: under fc.scheduler every message arrives once, in sender order, within capacity, rendezvous waits for the take",
  async () => {
    const workload = fc.record({
      capacity: capacityKind,
      senders: fc.integer({ min: 1, max: 3 }),
      receivers: fc.integer({ min: 1, max: 3 }),
      counts: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 3 }),
      tryForms: fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), workload, async (scheduler, work) => {
        const owner = Mailbox.create({
          name: testName("mbp"),
          capacity: work.capacity,
          maxMessageSize: 32,
          segmentSize: 512,
        });
        const handles: Mailbox[] = [owner];
        const total = work.counts.slice(0, work.senders).reduce((a, b) => a + b, 0);
        const delivered = new Set<string>();
        let blockedReceivers = 0;
        let completedBlockingSends = 0;
        let choice = 0;
        const useTry = () => work.tryForms[choice++ % work.tryForms.length];
        const checkCapacity = () =>
          assert.ok(owner.queued <= bound(work.capacity), "more messages queued than capacity");

        const sender = async (id: number) => {
          const box = Mailbox.open({ name: owner.name, senderName: `s${id}` });
          handles.push(box);
          for (let sequence = 0; sequence < work.counts[id]; sequence++) {
            await scheduler.schedule(Promise.resolve(), `sender ${id} step`);
            const message = `${id}:${sequence}`;
            if (useTry()) {
              const receiversBlocked = blockedReceivers;
              const queued = owner.queued;
              if (box.trySend(message)) {
                if (work.capacity === 0) {
                  assert.ok(receiversBlocked > 0, "rendezvous trySend with no receiver blocked");
                }
                checkCapacity();
                continue;
              }
              if (work.capacity !== 0) {
                assert.ok(queued >= bound(work.capacity), "trySend said full with room left");
              }
            }
            await box.send(message, { timeout: 20_000 });
            completedBlockingSends++;
            if (work.capacity === 0) {
              assert.ok(
                completedBlockingSends <= owner.stats().received,
                "a rendezvous send completed before its message was taken",
              );
            }
            checkCapacity();
          }
        };

        const receiver = async (id: number) => {
          const box = Mailbox.open({ name: owner.name });
          handles.push(box);
          const lastFrom = new Map<string, number>();
          while (delivered.size < total) {
            await scheduler.schedule(Promise.resolve(), `receiver ${id} step`);
            let message: MailboxMessage | undefined;
            if (useTry()) {
              const queuedBefore = owner.queued;
              message = box.tryReceive();
              if (message === undefined) {
                assert.equal(queuedBefore, 0, "tryReceive said empty with messages queued");
              }
            } else {
              blockedReceivers++;
              try {
                message = await box.receive({ timeout: 30 });
              } catch (error) {
                if (!(error instanceof TimedOutError)) throw error;
              } finally {
                blockedReceivers--;
              }
            }
            if (message === undefined) continue;
            const text = message.text();
            const [sender, sequence] = text.split(":");
            assert.equal(message.sender.name, `s${sender}`, "wrong sender name");
            assert.equal(message.sender.pid, Deno.pid);
            assert.ok(!delivered.has(text), `${text} delivered twice`);
            delivered.add(text);
            assert.ok(Number(sequence) > (lastFrom.get(sender) ?? -1), "sender order broken");
            lastFrom.set(sender, Number(sequence));
            checkCapacity();
          }
        };

        try {
          await scheduler.waitFor(Promise.all([
            ...Array.from({ length: work.senders }, (_, id) => sender(id)),
            ...Array.from({ length: work.receivers }, (_, id) => receiver(id)),
          ]));
          assert.equal(delivered.size, total);
          assert.partialDeepStrictEqual(owner.stats(), { sent: total, received: total, queued: 0 });
        } finally {
          for (const handle of handles) handle.close();
          Mailbox.delete(owner.name);
        }
      }),
      { numRuns: propertyRuns(25) },
    );
  },
);

ipcTest(
  "direct links under fc.scheduler: receiveFrom(Q) returns only Q's messages, in order, once",
  async () => {
    const workload = fc.record({
      capacity: capacityKind,
      counts: fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 3, maxLength: 3 }),
      picks: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 64, maxLength: 64 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), workload, async (scheduler, work) => {
        const namespace = `p${crypto.randomUUID().slice(0, 8)}`;
        const senders = ["A", "B", "C"];
        const receiverEndpoint = DirectEndpoint.open({ name: "R", namespace });
        const endpoints = [receiverEndpoint];
        const total = work.counts.reduce((a, b) => a + b, 0);
        const delivered = new Set<string>();
        try {
          const sender = async (index: number) => {
            const endpoint = DirectEndpoint.open({
              name: senders[index],
              namespace,
              capacity: work.capacity,
            });
            endpoints.push(endpoint);
            for (let sequence = 0; sequence < work.counts[index]; sequence++) {
              await scheduler.schedule(Promise.resolve(), `${senders[index]} sends`);
              await endpoint.send("R", `${senders[index]}:${sequence}`, { timeout: 20_000 });
            }
          };
          const receiver = async () => {
            const last = new Map<string, number>();
            for (let step = 0; delivered.size < total; step++) {
              await scheduler.schedule(Promise.resolve(), "R receives");
              const pick = work.picks[step % work.picks.length];
              let message: MailboxMessage | undefined;
              try {
                message = pick === 3
                  ? await receiverEndpoint.receive({ timeout: 30 })
                  : await receiverEndpoint.receiveFrom(senders[pick], { timeout: 30 });
              } catch (error) {
                if (!(error instanceof TimedOutError)) throw error;
              }
              if (message === undefined) continue;
              const [from, sequence] = message.text().split(":");
              assert.equal(message.sender.name, from);
              if (pick !== 3) {
                assert.equal(from, senders[pick], "receiveFrom gave another's message");
              }
              assert.ok(!delivered.has(message.text()), "delivered twice");
              delivered.add(message.text());
              assert.ok(Number(sequence) > (last.get(from) ?? -1), "order broken");
              last.set(from, Number(sequence));
            }
          };
          await scheduler.waitFor(Promise.all([sender(0), sender(1), sender(2), receiver()]));
          assert.equal(delivered.size, total);
        } finally {
          for (const endpoint of endpoints) {
            endpoint.unlink();
            endpoint.close();
          }
        }
      }),
      { numRuns: propertyRuns(15) },
    );
  },
);

type Command = fc.AsyncCommand<Model, Real>;
interface Model {
  queue: string[];
  capacity: MailboxCapacity;
}
interface Real {
  box: Mailbox;
  peer: Mailbox;
}

class TrySend implements Command {
  constructor(readonly text: string) {}
  check = () => true;
  run(model: Model, real: Real): Promise<void> {
    const accepted = real.peer.trySend(this.text);
    // Sequential commands: no receiver is ever blocked during a trySend.
    const expected = model.capacity !== 0 && model.queue.length < bound(model.capacity);
    assert.equal(accepted, expected);
    if (accepted) model.queue.push(this.text);
    assert.equal(real.box.queued, model.queue.length);
    return Promise.resolve();
  }
  toString = () => `trySend(${this.text})`;
}

class TimedSend implements Command {
  constructor(readonly text: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const room = model.capacity !== 0 && model.queue.length < bound(model.capacity);
    try {
      await real.peer.send(this.text, { timeout: 5 });
      assert.ok(room, "send completed without room (or, at capacity 0, without a receiver)");
      model.queue.push(this.text);
    } catch (error) {
      assert.ok(error instanceof TimedOutError, String(error));
      assert.ok(!room, "send timed out with room left");
    }
    assert.equal(real.box.queued, model.queue.length, "a send that gave up left its message");
  }
  toString = () => `send(${this.text}, 5 ms)`;
}

class TryReceive implements Command {
  check = () => true;
  run(model: Model, real: Real): Promise<void> {
    const message = real.box.tryReceive();
    assert.equal(message?.text(), model.queue.shift());
    return Promise.resolve();
  }
  toString = () => "tryReceive()";
}

class TimedReceive implements Command {
  check = () => true;
  async run(model: Model, real: Real) {
    try {
      const message = await real.box.receive({ timeout: 5 });
      assert.equal(message.text(), model.queue.shift());
    } catch (error) {
      assert.ok(error instanceof TimedOutError, String(error));
      assert.equal(model.queue.length, 0, "receive timed out with messages queued");
    }
  }
  toString = () => "receive(5 ms)";
}

// Rendezvous and hand-over: a receiver waits, then a non-blocking send succeeds.
class SendToWaitingReceiver implements Command {
  constructor(readonly text: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const receiving = real.box.receive({ timeout: 2000 });
    const accepted = real.peer.trySend(this.text);
    const expectedFirst = model.queue.length > 0 ? model.queue[0] : this.text;
    // The waiting receiver got the head of the queue at once if there was one.
    if (model.queue.length > 0) {
      assert.equal(accepted, model.queue.length - 1 < bound(model.capacity));
    } else {
      assert.equal(accepted, true, "trySend failed although a receiver was waiting");
    }
    if (accepted) model.queue.push(this.text);
    assert.equal((await receiving).text(), expectedFirst);
    model.queue.shift();
  }
  toString = () => `receive() + trySend(${this.text})`;
}

// A blocking send completes once a receiver takes the message.
class ReceiveFromWaitingSender implements Command {
  constructor(readonly text: string) {}
  check = (model: Readonly<Model>) => model.queue.length === 0;
  async run(model: Model, real: Real) {
    let completed = false;
    const sending = real.peer.send(this.text, { timeout: 2000 }).then(() => completed = true);
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (model.capacity === 0) assert.equal(completed, false, "rendezvous send did not wait");
    const message = await real.box.receive({ timeout: 2000 });
    assert.equal(message.text(), this.text);
    await sending;
  }
  toString = () => `send(${this.text}) + receive()`;
}

for (const kind of ["zero", "bounded", "unbounded"] as const) {
  ipcTest(
    `mailbox (${kind} capacity): random command sequences agree with a FIFO model`,
    async () => {
      const capacityArbitrary: fc.Arbitrary<MailboxCapacity> = kind === "zero"
        ? fc.constant(0)
        : kind === "bounded"
        ? fc.integer({ min: 1, max: 4 })
        : fc.constant("unbounded");
      const text = fc.string({ minLength: 0, maxLength: 12 });
      const commands = fc.commands([
        text.map((t) => new TrySend(t)),
        text.map((t) => new TimedSend(t)),
        fc.constant(new TryReceive()),
        fc.constant(new TimedReceive()),
        text.map((t) => new SendToWaitingReceiver(t)),
        text.map((t) => new ReceiveFromWaitingSender(t)),
      ], { maxCommands: 40 });
      await fc.assert(
        fc.asyncProperty(capacityArbitrary, commands, async (capacity, sequence) => {
          const box = Mailbox.create({
            name: testName("mbm"),
            capacity,
            maxMessageSize: 48,
            segmentSize: 512,
          });
          const peer = Mailbox.open({ name: box.name });
          try {
            await fc.asyncModelRun(
              () => ({ model: { queue: [], capacity }, real: { box, peer } }),
              sequence,
            );
          } finally {
            peer.close();
            box.delete();
            box.close();
          }
        }),
        { numRuns: propertyRuns(15) },
      );
    },
  );
}

ipcTest(
  "mailbox across processes: random senders, receivers, mailboxes and capacities deliver every message once, in order, within capacity",
  async () => {
    const workload = fc.record({
      senders: fc.integer({ min: 1, max: 3 }),
      receiversPerBox: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 1, maxLength: 2 }),
      capacities: fc.array(capacityKind, { minLength: 2, maxLength: 2 }),
      count: fc.integer({ min: 1, max: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(workload, async (work) => {
        const boxes = work.receiversPerBox.map((_, i) =>
          Mailbox.create({
            name: testName("mbx"),
            capacity: work.capacities[i],
            maxMessageSize: 64,
          })
        );
        const children: Child[] = [];
        try {
          const names = boxes.map((box) => box.name);
          const receivers = boxes.flatMap((box, i) =>
            Array.from(
              { length: work.receiversPerBox[i] },
              () => new Child("mailbox_child.ts", ["receiver", box.name]),
            )
          );
          const senders = Array.from(
            { length: work.senders },
            (_, id) =>
              new Child("mailbox_child.ts", ["sender", String(id), String(work.count), ...names]),
          );
          children.push(...receivers, ...senders);
          const senderReports = await Promise.all(senders.map((child) => child.line()));
          for (const child of senders) assert.equal((await child.status()).code, 0);
          // Every sender is done: one "stop" per receiver, each taking exactly one.
          for (const [i, box] of boxes.entries()) {
            for (let r = 0; r < work.receiversPerBox[i]; r++) {
              await box.send("stop", { timeout: 30_000 });
            }
          }
          const receiverReports = await Promise.all(receivers.map((child) => child.line()));
          for (const child of receivers) assert.equal((await child.status()).code, 0);

          const all = new Set<string>();
          let offset = 0;
          for (const [i, count] of work.receiversPerBox.entries()) {
            for (const line of receiverReports.slice(offset, offset + count)) {
              const report = JSON.parse(line) as { keys: [string, number][]; maxQueued: number };
              assert.ok(report.maxQueued <= bound(work.capacities[i]), "capacity exceeded");
              const last = new Map<string, number>();
              for (const [id, sequence] of report.keys) {
                const key = `${id}:${sequence}`;
                assert.ok(!all.has(key), `${key} received twice`);
                all.add(key);
                assert.equal(
                  (sequence * 7 + Number(id)) % boxes.length,
                  i,
                  `${key} in the wrong box`,
                );
                assert.ok(sequence > (last.get(id) ?? -1), "sender order broken");
                last.set(id, sequence);
              }
            }
            offset += count;
          }
          for (const line of senderReports) {
            const { maxQueued } = JSON.parse(line) as { maxQueued: number[] };
            maxQueued.forEach((queued, i) => {
              assert.ok(queued <= bound(work.capacities[i]), `capacity of mailbox ${i} exceeded`);
            });
          }
          assert.equal(all.size, work.senders * work.count, "messages lost");
        } finally {
          for (const child of children) await child[Symbol.asyncDispose]();
          for (const box of boxes) {
            box.delete();
            box.close();
          }
        }
      }),
      { numRuns: propertyRuns(4) },
    );
  },
);

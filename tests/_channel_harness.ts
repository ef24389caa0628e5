// Property tests for any producer-consumer Channel (see lib/channel.ts). Each structure
// under test is described by a ChannelFixture; the properties below only use the Channel
// interface, so they can be pointed at other queues that implement it.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BoundedBuffer,
  type Channel,
  MessageRing,
  SemaphoreBoundedBuffer,
  StreamEndedError,
  TimedOutError,
} from "../mod.ts";
import { testName } from "./_helpers.ts";

/** How to make, open and inspect one kind of channel. */
export interface ChannelFixture {
  label: string;
  /** Several producer handles may send at once. */
  multiProducer: boolean;
  /** Several consumer handles may receive at once. */
  multiConsumer: boolean;
  /** true: every producer calls end(); false: one end() after all producers are done. */
  endPerProducer: boolean;
  /** Smallest item size the fixture supports. */
  create(shape: ChannelShape): Channel;
  open(name: string): Channel;
  /** Items the channel holds when full, for this shape. */
  capacityItems(channel: Channel, shape: ChannelShape): number;
  /** Items in the channel now, as the structure itself reports it. */
  count(channel: Channel, shape: ChannelShape): number;
  unlink(name: string): void;
}

/** The size of a channel under test. */
export interface ChannelShape {
  /** Requested capacity, in items. */
  slots: number;
  itemSize: number;
  producers: number;
}

function ringRecord(itemSize: number): number {
  return (8 + itemSize + 7) & ~7;
}

/** The three structures of lib/. */
export const FIXTURES: ChannelFixture[] = [
  {
    label: "BoundedBuffer (textbook)",
    multiProducer: false,
    multiConsumer: false,
    endPerProducer: false,
    create: ({ slots, itemSize }) =>
      BoundedBuffer.create({ name: testName("bb"), bufferSize: slots + 1, itemSize }),
    open: (name) => BoundedBuffer.open({ name }),
    capacityItems: (channel) => (channel as BoundedBuffer).capacity,
    count: (channel) => (channel as BoundedBuffer).count,
    unlink: (name) => BoundedBuffer.unlink(name),
  },
  {
    label: "SemaphoreBoundedBuffer",
    multiProducer: true,
    multiConsumer: true,
    endPerProducer: false,
    create: ({ slots, itemSize }) =>
      SemaphoreBoundedBuffer.create({ name: testName("sb"), bufferSize: slots, itemSize }),
    open: (name) => SemaphoreBoundedBuffer.open({ name }),
    capacityItems: (channel) => (channel as SemaphoreBoundedBuffer).capacity,
    count: (channel) => (channel as SemaphoreBoundedBuffer).count,
    unlink: (name) => SemaphoreBoundedBuffer.unlink(name),
  },
  {
    label: "MessageRing",
    multiProducer: true,
    multiConsumer: true,
    endPerProducer: true,
    create: ({ slots, itemSize, producers }) =>
      MessageRing.create({
        name: testName("mr"),
        capacity: slots * ringRecord(itemSize),
        multiProducer: true,
        multiConsumer: true,
        producers,
      }),
    open: (name) => MessageRing.open({ name }),
    capacityItems: (channel, { itemSize }) =>
      Math.floor((channel as MessageRing).capacity / ringRecord(itemSize)),
    count: (channel, { itemSize }) => (channel as MessageRing).usedBytes / ringRecord(itemSize),
    unlink: (name) => MessageRing.unlink(name),
  },
];

/** An item that names its producer and sequence number, filled to `itemSize` bytes. */
export function makeItem(producer: number, sequence: number, itemSize: number): Uint8Array {
  const item = new Uint8Array(itemSize).fill((producer * 31 + sequence) & 0xff);
  item[0] = producer;
  item[1] = sequence & 0xff;
  item[2] = sequence >> 8;
  return item;
}

/** Reads back [producer, sequence] and checks the filler. */
export function readItem(item: Uint8Array): [number, number] {
  const producer = item[0];
  const sequence = item[1] | (item[2] << 8);
  for (let i = 3; i < item.length; i++) {
    assert.equal(item[i], (producer * 31 + sequence) & 0xff, "item content is corrupt");
  }
  return [producer, sequence];
}

const key = (item: Uint8Array) => readItem(item).join(":");

/**
 * Property 1: producers and consumers as async tasks, each on its own mapping of one
 * object, stepping in an order chosen by fc.scheduler(). One step is one try operation,
 * so the model knows the exact state at every step.
 */
export function interleavingProperty(fixture: ChannelFixture): fc.IAsyncPropertyWithHooks<
  [
    fc.Scheduler,
    { producers: number; consumers: number; counts: number[]; slots: number; itemSize: number },
  ]
> {
  const workload = fc.record({
    producers: fc.integer({ min: 1, max: fixture.multiProducer ? 3 : 1 }),
    consumers: fc.integer({ min: 1, max: fixture.multiConsumer ? 3 : 1 }),
    counts: fc.array(fc.integer({ min: 0, max: 10 }), { minLength: 3, maxLength: 3 }),
    slots: fc.integer({ min: 1, max: 5 }),
    itemSize: fc.integer({ min: 3, max: 20 }),
  });
  return fc.asyncProperty(fc.scheduler(), workload, async (scheduler, work) => {
    const shape = { slots: work.slots, itemSize: work.itemSize, producers: work.producers };
    const owner = fixture.create(shape);
    const handles: Channel[] = [owner];
    try {
      const capacity = fixture.capacityItems(owner, shape);
      const model: string[] = [];
      let producersDone = 0;
      let endCalled = false;
      const delivered = new Set<string>();

      const producer = async (id: number) => {
        const channel = fixture.open(owner.name);
        handles.push(channel);
        for (let sequence = 0; sequence < work.counts[id]; sequence++) {
          const item = makeItem(id, sequence, work.itemSize);
          while (true) {
            await scheduler.schedule(Promise.resolve(), `producer ${id}`);
            if (channel.trySend(item)) {
              model.push(key(item));
              assert.ok(fixture.count(owner, shape) <= capacity, "more items than capacity");
              assert.equal(fixture.count(owner, shape), model.length);
              break;
            }
            assert.equal(model.length, capacity, "a producer waited although not full");
          }
        }
        producersDone++;
        if (fixture.endPerProducer) channel.end();
        else if (producersDone === work.producers) {
          channel.end();
        }
        if (producersDone === work.producers) endCalled = true;
      };

      const consumer = async (id: number) => {
        const channel = fixture.open(owner.name);
        handles.push(channel);
        while (true) {
          await scheduler.schedule(Promise.resolve(), `consumer ${id}`);
          const item = channel.tryReceive();
          if (item === null) {
            assert.ok(endCalled, "end of stream before every producer ended");
            assert.equal(model.length, 0, "end of stream with items left");
            assert.equal(channel.tryReceive(), null, "something delivered after the end");
            return;
          }
          if (item === undefined) {
            assert.equal(model.length, 0, "a consumer waited although not empty");
            continue;
          }
          const got = key(item);
          assert.equal(got, model.shift(), "not first in, first out");
          assert.ok(!delivered.has(got), `${got} delivered twice`);
          delivered.add(got);
        }
      };

      const tasks = [
        ...Array.from({ length: work.producers }, (_, id) => producer(id)),
        ...Array.from({ length: work.consumers }, (_, id) => consumer(id)),
      ];
      await scheduler.waitFor(Promise.all(tasks));
      const produced = work.counts.slice(0, work.producers).reduce((a, b) => a + b, 0);
      assert.equal(delivered.size, produced, "not every item was consumed");
    } finally {
      for (const handle of handles) handle.close();
      fixture.unlink(owner.name);
    }
  });
}

type Model = { queue: string[]; capacity: number; ended: boolean; sequence: number };
type Real = { producer: Channel; consumer: Channel; itemSize: number };

class TrySend implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const item = makeItem(0, model.sequence, real.itemSize);
    if (model.ended) {
      assert.throws(() => real.producer.trySend(item), StreamEndedError);
      return;
    }
    const sent = real.producer.trySend(item);
    assert.equal(sent, model.queue.length < model.capacity);
    if (sent) model.queue.push(key(item)), model.sequence++;
    await Promise.resolve();
  }
  toString = () => "trySend";
}

class SendWithTimeout implements fc.AsyncCommand<Model, Real> {
  constructor(readonly timeout: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const item = makeItem(0, model.sequence, real.itemSize);
    if (model.ended) {
      await assert.rejects(real.producer.send(item, { timeout: this.timeout }), StreamEndedError);
    } else if (model.queue.length < model.capacity) {
      await real.producer.send(item, { timeout: this.timeout });
      model.queue.push(key(item));
      model.sequence++;
    } else {
      await assert.rejects(real.producer.send(item, { timeout: this.timeout }), TimedOutError);
    }
  }
  toString = () => `send(timeout ${this.timeout})`;
}

class TryReceive implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const item = real.consumer.tryReceive();
    if (model.queue.length > 0) {
      assert.ok(item instanceof Uint8Array);
      assert.equal(key(item), model.queue.shift());
    } else {
      assert.equal(item, model.ended ? null : undefined);
    }
    await Promise.resolve();
  }
  toString = () => "tryReceive";
}

class ReceiveWithTimeout implements fc.AsyncCommand<Model, Real> {
  constructor(readonly timeout: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    if (model.queue.length > 0) {
      const item = await real.consumer.receive({ timeout: this.timeout });
      assert.ok(item instanceof Uint8Array);
      assert.equal(key(item), model.queue.shift());
    } else if (model.ended) {
      assert.equal(await real.consumer.receive({ timeout: this.timeout }), null);
    } else {
      await assert.rejects(real.consumer.receive({ timeout: this.timeout }), TimedOutError);
    }
  }
  toString = () => `receive(timeout ${this.timeout})`;
}

class End implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    real.producer.end();
    model.ended = true;
    await Promise.resolve();
  }
  toString = () => "end";
}

/**
 * Property 2: random sequences of trySend / send with timeout / tryReceive / receive
 * with timeout / end on a producer handle and a consumer handle, against a FIFO model.
 */
export function modelProperty(fixture: ChannelFixture): fc.IAsyncPropertyWithHooks<
  [Iterable<fc.AsyncCommand<Model, Real>>, number, number]
> {
  const timeout = fc.integer({ min: 0, max: 3 });
  const commands = fc.commands([
    fc.constant(new TrySend()),
    timeout.map((t) => new SendWithTimeout(t)),
    fc.constant(new TryReceive()),
    timeout.map((t) => new ReceiveWithTimeout(t)),
    fc.constant(new End()),
  ], { maxCommands: 40 });
  return fc.asyncProperty(
    commands,
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 3, max: 40 }),
    async (sequence, slots, itemSize) => {
      const shape = { slots, itemSize, producers: 1 };
      const producer = fixture.create(shape);
      const consumer = fixture.open(producer.name);
      try {
        const capacity = fixture.capacityItems(producer, shape);
        await fc.asyncModelRun(
          () => ({
            model: { queue: [], capacity, ended: false, sequence: 0 },
            real: { producer, consumer, itemSize },
          }),
          sequence,
        );
      } finally {
        producer.close();
        consumer.close();
        fixture.unlink(producer.name);
      }
    },
  );
}

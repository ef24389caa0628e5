// The producer-consumer problem over shared memory, with real processes.
//
// Part 1, the textbook bounded buffer: buffer[BUFFER_SIZE] with `in` and `out`. The
// producer makes items quickly while the consumer is slow (the producer finds the buffer
// full and waits), then the producer slows down (the consumer finds it empty and waits).
// Part 2, the fast message ring: three producer processes and one consumer.
//
//   deno run -A --unstable-net scenarios/producer_consumer_shm.ts
import { BoundedBuffer, MessageRing } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const BUFFER_SIZE = 5;
const ITEM_SIZE = 16;
const ITEMS = 12;
const PRODUCER_FAST_ITEMS = 6; // then the producer slows down
const CONSUMER_SLOW_ITEMS = 5; // then the consumer speeds up
const RING_PRODUCERS = 3;
const RING_MESSAGES = 4;
const BULK_MESSAGES = 100_000;

const BUFFER = "bounded buffer (shm)";
const RING = "message ring (shm)";

const { role, values } = scenarioArgs();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function item(text: string): Uint8Array {
  const bytes = new Uint8Array(ITEM_SIZE);
  encoder.encodeInto(text, bytes);
  return bytes;
}

function text(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

if (role === "producer") {
  using buffer = BoundedBuffer.open({ name: values.name });
  traceEvent(role, "open", { object: BUFFER });
  for (let n = 1; n <= ITEMS; n++) {
    if (n > PRODUCER_FAST_ITEMS) await sleep(40);
    const next = item(`item ${n}`);
    if (!buffer.trySend(next)) {
      traceEvent(role, "block", {
        object: BUFFER,
        label: "buffer full",
        text:
          `buffer full: (in + 1) % ${BUFFER_SIZE} == out (in=${buffer.in}, out=${buffer.out}); ` +
          "waiting",
      });
      await buffer.send(next, { timeout: 10_000 });
      traceEvent(role, "wake", { object: BUFFER, label: "a slot is free" });
    }
    const at = (buffer.in - 1 + BUFFER_SIZE) % BUFFER_SIZE;
    traceEvent(role, "send", {
      object: BUFFER,
      label: `item ${n}`,
      text: `buffer[${at}] = "item ${n}"; in = ${buffer.in}`,
    });
  }
  buffer.end();
  traceEvent(role, "send", { object: BUFFER, label: "end of stream", text: "end of stream" });
} else if (role === "consumer") {
  using buffer = BoundedBuffer.open({ name: values.name });
  traceEvent(role, "open", { object: BUFFER });
  let consumed = 0;
  while (true) {
    if (consumed < CONSUMER_SLOW_ITEMS) await sleep(40);
    let next = buffer.tryReceive();
    if (next === undefined) {
      traceEvent(role, "block", {
        object: BUFFER,
        label: "buffer empty",
        text: `buffer empty: in == out (${buffer.in}); waiting`,
      });
      next = await buffer.receive({ timeout: 10_000 });
      traceEvent(role, "wake", { object: BUFFER, label: "an item arrived" });
    }
    if (next === null) {
      traceEvent(role, "receive", { object: BUFFER, label: "end of stream" });
      break;
    }
    consumed++;
    const at = (buffer.out - 1 + BUFFER_SIZE) % BUFFER_SIZE;
    traceEvent(role, "receive", {
      object: BUFFER,
      label: text(next),
      text: `next_consumed = buffer[${at}] = "${text(next)}"; out = ${buffer.out}`,
    });
  }
  trace(role, `end of stream after ${consumed} items`);
} else if (role === "ring-producer") {
  using ring = MessageRing.open({ name: values.name });
  const me = `producer ${values.index}`;
  for (let n = 1; n <= RING_MESSAGES; n++) {
    const message = `producer ${values.index}, message ${n}`;
    await ring.sendText(message, { timeout: 10_000 });
    traceEvent(me, "send", { object: RING, label: message });
    await sleep(5 + Math.random() * 10);
  }
  if (values.index === "0") {
    const message = new Uint8Array(64);
    for (let n = 0; n < BULK_MESSAGES; n++) {
      if (!ring.trySend(message)) await ring.send(message, { timeout: 10_000 });
    }
    traceEvent(me, "summary", {
      object: RING,
      label: "64-byte message",
      count: BULK_MESSAGES,
      text: `also sent ${BULK_MESSAGES} messages of 64 bytes`,
    });
  }
  ring.end();
  traceEvent(me, "send", { object: RING, label: "end" });
} else if (role === "ring-consumer") {
  using ring = MessageRing.open({ name: values.name });
  let bulk = 0;
  let started = 0;
  for await (const message of ring) {
    if (message.length === 64) {
      if (bulk++ === 0) started = performance.now();
      continue;
    }
    const text = decoder.decode(message);
    traceEvent("consumer", "receive", { object: RING, label: text, text: `received "${text}"` });
  }
  const seconds = (performance.now() - started) / 1000;
  trace(
    "consumer",
    `received ${bulk} messages of 64 bytes in ${(seconds * 1000).toFixed(0)} ms ` +
      `(${Math.round(bulk / seconds).toLocaleString("en-US")} messages/s); all producers ended`,
  );
} else {
  trace(
    "main",
    `part 1: textbook bounded buffer, BUFFER_SIZE = ${BUFFER_SIZE} (holds ${BUFFER_SIZE - 1})`,
  );
  using buffer = BoundedBuffer.create({ bufferSize: BUFFER_SIZE, itemSize: ITEM_SIZE });
  traceEvent("main", "create", { object: BUFFER, label: `${BUFFER_SIZE} slots` });
  try {
    const roles = [
      spawnRole(import.meta.url, "producer", { name: buffer.name }),
      spawnRole(import.meta.url, "consumer", { name: buffer.name }),
    ];
    await expectSuccess(roles);
  } finally {
    buffer.unlink();
    traceEvent("main", "unlink", { object: BUFFER });
  }

  trace("main", `part 2: message ring, ${RING_PRODUCERS} producer processes, 1 consumer`);
  using ring = MessageRing.create({
    capacity: 64 * 1024,
    multiProducer: true,
    producers: RING_PRODUCERS,
  });
  traceEvent("main", "create", { object: RING, label: "64 KiB, 3 producers" });
  try {
    const roles = [
      spawnRole(import.meta.url, "ring-consumer", { name: ring.name }),
      ...Array.from(
        { length: RING_PRODUCERS },
        (_, index) => spawnRole(import.meta.url, "ring-producer", { name: ring.name, index }),
      ),
    ];
    await expectSuccess(roles);
  } finally {
    ring.unlink();
    traceEvent("main", "unlink", { object: RING });
  }
}

async function expectSuccess(processes: Deno.ChildProcess[]): Promise<void> {
  const statuses = await Promise.all(processes.map((process) => process.status));
  if (statuses.some((status) => status.code !== 0)) throw new Error("a process failed");
}

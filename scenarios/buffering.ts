// Buffering: the same sender and receiver with a link of capacity 0, 2 and unbounded.
// The receiver takes one message every 50 ms; the trace shows how long each send
// blocked:
// - capacity 0 (rendezvous): every send waits until the receiver has taken it;
// - capacity 2 (bounded): sends return at once until 2 messages are queued, then wait;
// - unbounded: no send ever waits (memory is the bound).
//
//   deno run -A --unstable-net scenarios/buffering.ts
import { Mailbox, type MailboxCapacity } from "../mod.ts";
import { now, runRole, scenarioArgs, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const MESSAGES = 5;
const RECEIVE_EVERY_MS = 50;
const BOX = `mailbox (capacity ${values.capacity ?? ""})`;

if (role === "sender") {
  using box = Mailbox.open({ name: values.name, senderName: "sender" });
  using ready = Mailbox.open({ name: values.ready });
  await ready.receive({ timeout: 10_000 }); // the receiver is running
  for (let i = 1; i <= MESSAGES; i++) {
    const started = now();
    await box.send(`message ${i}`, { timeout: 10_000 });
    const waited = now() - started;
    const blocked = waited >= 5;
    // Dated when send() was called: the message is offered then, and taken while it waits.
    traceEvent("sender", "send", {
      object: BOX,
      label: `message ${i}`,
      text: `send(message ${i}) ${
        blocked ? `blocked ${waited.toFixed(0)} ms` : "returned at once"
      }, ${box.queued} queued`,
    }, blocked ? started : undefined);
    if (blocked) {
      traceEvent("sender", "block", { object: BOX, label: "waits until taken" }, started);
      traceEvent("sender", "wake", {
        object: BOX,
        label: `send returns after ${waited.toFixed(0)} ms`,
      });
    }
  }
} else if (role === "receiver") {
  using inbox = Mailbox.open({ name: values.name });
  using ready = Mailbox.open({ name: values.ready });
  await ready.send("ready");
  for (let i = 1; i <= MESSAGES; i++) {
    await new Promise((resolve) => setTimeout(resolve, RECEIVE_EVERY_MS));
    const message = await inbox.receive({ timeout: 10_000 });
    traceEvent("receiver", "receive", {
      object: BOX,
      label: message.text(),
      text: `receive() -> "${message.text()}"`,
    });
  }
} else {
  for (const capacity of [0, 2, "unbounded"] as MailboxCapacity[]) {
    using box = Mailbox.create({ capacity });
    using ready = Mailbox.create({ capacity: 1 });
    const object = `mailbox (capacity ${capacity})`;
    try {
      trace("main", `--- capacity ${capacity} ---`);
      traceEvent("main", "create", { object });
      const shared = { name: box.name, ready: ready.name, capacity };
      await Promise.all([
        runRole(import.meta.url, "sender", shared),
        runRole(import.meta.url, "receiver", shared),
      ]);
    } finally {
      box.delete();
      ready.delete();
      traceEvent("main", "unlink", { object, label: "delete" });
    }
  }
}

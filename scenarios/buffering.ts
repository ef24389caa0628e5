// Buffering: the same sender and receiver with a link of capacity 0, 2 and unbounded.
// The receiver takes one message every 50 ms; the trace shows how long each send
// blocked:
// - capacity 0 (rendezvous): every send waits until the receiver has taken it;
// - capacity 2 (bounded): sends return at once until 2 messages are queued, then wait;
// - unbounded: no send ever waits (memory is the bound).
//
//   deno run -A --unstable-net scenarios/buffering.ts
import { Mailbox, type MailboxCapacity } from "../mod.ts";
import { runRole, scenarioArgs, trace } from "./_common.ts";

const { role, values } = scenarioArgs();
const MESSAGES = 5;
const RECEIVE_EVERY_MS = 50;

if (role === "sender") {
  using box = Mailbox.open({ name: values.name, senderName: "sender" });
  using ready = Mailbox.open({ name: values.ready });
  await ready.receive({ timeout: 10_000 }); // the receiver is running
  for (let i = 1; i <= MESSAGES; i++) {
    const started = performance.now();
    await box.send(`message ${i}`, { timeout: 10_000 });
    const waited = performance.now() - started;
    trace(
      "sender",
      `send(message ${i}) ${waited < 5 ? "returned at once" : `blocked ${waited.toFixed(0)} ms`}` +
        `, ${box.queued} queued`,
    );
  }
} else if (role === "receiver") {
  using inbox = Mailbox.open({ name: values.name });
  using ready = Mailbox.open({ name: values.ready });
  await ready.send("ready");
  for (let i = 1; i <= MESSAGES; i++) {
    await new Promise((resolve) => setTimeout(resolve, RECEIVE_EVERY_MS));
    const message = await inbox.receive({ timeout: 10_000 });
    trace("receiver", `receive() -> "${message.text()}"`);
  }
} else {
  for (const capacity of [0, 2, "unbounded"] as MailboxCapacity[]) {
    using box = Mailbox.create({ capacity });
    using ready = Mailbox.create({ capacity: 1 });
    try {
      trace("main", `--- capacity ${capacity} ---`);
      await Promise.all([
        runRole(import.meta.url, "sender", { name: box.name, ready: ready.name }),
        runRole(import.meta.url, "receiver", { name: box.name, ready: ready.name }),
      ]);
    } finally {
      box.delete();
      ready.delete();
    }
  }
}

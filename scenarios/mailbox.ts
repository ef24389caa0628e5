// Indirect communication through mailboxes (ports). Three processes share mailbox A;
// two of them also share mailbox B, so those two have two links, one per mailbox.
// P1 and P2 send to A, P3 receives from A and sees who sent each message; P1 sends to B
// and only P2, which shares B, receives it. The main process creates both mailboxes,
// and deletes them at the end.
//
//   deno run -A --unstable-net scenarios/mailbox.ts
import { Mailbox } from "../mod.ts";
import { runRole, scenarioArgs, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const TIMEOUT = { timeout: 10_000 };

if (role === "P1") {
  using a = Mailbox.open({ name: values.a, senderName: "P1" });
  using b = Mailbox.open({ name: values.b, senderName: "P1" });
  for (const text of ["order #1", "order #2"]) {
    await a.send(text, TIMEOUT);
    traceEvent("P1", "send", { object: "mailbox A", label: text, text: `send(A, "${text}")` });
  }
  const note = "note for whoever shares B";
  await b.send(note, TIMEOUT);
  traceEvent("P1", "send", { object: "mailbox B", label: note, text: `send(B, "${note}")` });
} else if (role === "P2") {
  using a = Mailbox.open({ name: values.a, senderName: "P2" });
  using b = Mailbox.open({ name: values.b, senderName: "P2" });
  await a.send("order #3", TIMEOUT);
  traceEvent("P2", "send", { object: "mailbox A", label: "order #3", text: `send(A, "order #3")` });
  const note = await b.receive(TIMEOUT);
  traceEvent("P2", "receive", {
    object: "mailbox B",
    label: note.text(),
    text: `receive(B) -> "${note.text()}" from ${note.sender.name} (pid ${note.sender.pid})`,
  });
} else if (role === "P3") {
  using a = Mailbox.open({ name: values.a, senderName: "P3" });
  for (let i = 0; i < 3; i++) {
    const message = await a.receive(TIMEOUT);
    traceEvent("P3", "receive", {
      object: "mailbox A",
      label: message.text(),
      text: `receive(A) -> "${message.text()}" from ${message.sender.name} ` +
        `(pid ${message.sender.pid})`,
    });
  }
  trace("P3", `receive(A) without waiting -> ${a.tryReceive() ?? "null message (A is empty)"}`);
} else {
  using a = Mailbox.create({ capacity: 4 });
  using b = Mailbox.create({ capacity: 4 });
  try {
    traceEvent("main", "create", { object: "mailbox A", label: "capacity 4" });
    traceEvent("main", "create", { object: "mailbox B", label: "capacity 4" });
    trace("main", `created mailbox A = ${a.name} (P1, P2, P3) and B = ${b.name} (P1, P2)`);
    const names = { a: a.name, b: b.name };
    await Promise.all(["P1", "P2", "P3"].map((name) => runRole(import.meta.url, name, names)));
    const stats = a.stats();
    trace("main", `A: ${stats.sent} sent, ${stats.received} received; deleting A and B`);
  } finally {
    a.delete();
    b.delete();
    traceEvent("main", "unlink", { object: "mailbox A", label: "delete" });
    traceEvent("main", "unlink", { object: "mailbox B", label: "delete" });
  }
}

// Child process for mailbox and direct-communication tests.
//   sender ID COUNT BOX...        sends COUNT messages "ID:SEQ", message SEQ to BOX[(SEQ * 7 + ID) % n],
//                                 alternating trySend and send; prints {maxQueued: per mailbox}
//   receiver BOX                  receives until a "stop" message; prints {keys, maxQueued}
//   direct NAMESPACE NAME ...     see the direct tests
import { DirectEndpoint, Mailbox, NotFoundError } from "../../mod.ts";

const [action, ...rest] = Deno.args;
const TIMEOUT = 60_000;

function observe(box: Mailbox, seen: { maxQueued: number }): void {
  seen.maxQueued = Math.max(seen.maxQueued, box.queued);
}

if (action === "sender") {
  const [id, count, ...names] = rest;
  const boxes = names.map((name) => Mailbox.open({ name, senderName: `s${id}` }));
  const maxQueued = boxes.map(() => 0); // per mailbox, against its own capacity
  for (let sequence = 0; sequence < Number(count); sequence++) {
    const index = (sequence * 7 + Number(id)) % boxes.length;
    const box = boxes[index];
    const message = `${id}:${sequence}`;
    if (sequence % 2 === 1 || !box.trySend(message)) await box.send(message, { timeout: TIMEOUT });
    maxQueued[index] = Math.max(maxQueued[index], box.queued);
  }
  for (const box of boxes) box.close();
  console.log(JSON.stringify({ maxQueued }));
} else if (action === "receiver") {
  using box = Mailbox.open({ name: rest[0] });
  const seen = { maxQueued: 0 };
  const keys: [string, number][] = [];
  while (true) {
    const message = keys.length % 3 === 2
      ? box.tryReceive() ?? await box.receive({ timeout: TIMEOUT })
      : await box.receive({ timeout: TIMEOUT });
    observe(box, seen);
    const text = message.text();
    if (text === "stop") break;
    const [id, sequence] = text.split(":");
    if (message.sender.name !== `s${id}` || message.sender.pid <= 0) {
      throw new Error(`wrong sender ${JSON.stringify(message.sender)} on ${text}`);
    }
    keys.push([id, Number(sequence)]);
  }
  console.log(JSON.stringify({ ...seen, keys }));
} else if (action === "direct") {
  // direct NAMESPACE NAME PEER COUNT: sends COUNT messages to PEER, then prints everything
  // it receives from anyone until it has EXPECT messages; reports what receiveFrom(OTHER) saw.
  const [namespace, name, peer, count, expect, other] = rest;
  using endpoint = DirectEndpoint.open({ name, namespace, capacity: 4 });
  // The peer may not have opened its endpoint yet: until then, sending is NotFoundError.
  const started = Date.now();
  while (true) {
    try {
      await endpoint.send(peer, `${name}>${peer}#0`);
      break;
    } catch (error) {
      if (!(error instanceof NotFoundError) || Date.now() - started > TIMEOUT) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  for (let i = 1; i < Number(count); i++) await endpoint.send(peer, `${name}>${peer}#${i}`);
  const received: string[] = [];
  while (received.length < Number(expect)) {
    const message = await endpoint.receive({ timeout: TIMEOUT });
    received.push(`${message.sender.name}:${message.text()}`);
  }
  const stray = endpoint.tryReceiveFrom(other);
  console.log(JSON.stringify({ received, stray: stray?.text() ?? null }));
} else {
  throw new Error(`unknown action ${action}`);
}

// Child process for channel tests.
//   producer KIND NAME ID COUNT ITEM_SIZE END   sends COUNT items (makeItem); END=1: end()
//   consumer KIND NAME                          receives until the end; prints the keys as JSON
//   flood NAME                                  sends 256 KiB messages [seq, fill] forever
//   big NAME BYTES                              prints "sending", sends one BYTES message, prints "sent"
//   try-send NAME BYTES | try-receive NAME      prints "trying", makes one attempt, prints its result
// KIND: textbook | semaphore | ring
// Crash points: see _crash.ts.
import "./_crash.ts";
import {
  BoundedBuffer,
  type Channel,
  Mailbox,
  MessageRing,
  SemaphoreBoundedBuffer,
} from "../../mod.ts";
import { makeItem, readItem } from "../_channel_harness.ts";

function open(kind: string, name: string): Channel {
  switch (kind) {
    case "textbook":
      return BoundedBuffer.open({ name });
    case "semaphore":
      return SemaphoreBoundedBuffer.open({ name });
    case "ring":
      return MessageRing.open({ name });
  }
  throw new Error(`unknown kind ${kind}`);
}

const [action] = Deno.args;
if (action === "producer") {
  const [, kind, name, id, count, itemSize, end] = Deno.args;
  using channel = open(kind, name);
  for (let sequence = 0; sequence < Number(count); sequence++) {
    await channel.send(makeItem(Number(id), sequence, Number(itemSize)), { timeout: 30_000 });
  }
  if (end === "1") channel.end();
} else if (action === "consumer") {
  const [, kind, name] = Deno.args;
  using channel = open(kind, name);
  const keys: [number, number][] = [];
  while (true) {
    const item = await channel.receive({ timeout: 30_000 });
    if (item === null) break;
    keys.push(readItem(item));
  }
  console.log(JSON.stringify(keys));
} else if (action === "flood") {
  using ring = MessageRing.open({ name: Deno.args[1] });
  const message = new Uint8Array(256 * 1024);
  const words = new Uint32Array(message.buffer, 0, 1);
  console.log("ready");
  for (let sequence = 0;; sequence++) {
    words[0] = sequence;
    message.fill(sequence & 0xff, 4);
    await ring.send(message, { timeout: 30_000 });
  }
} else if (action === "big") {
  using ring = MessageRing.open({ name: Deno.args[1] });
  const message = new Uint8Array(Number(Deno.args[2])).fill(0xab);
  console.log("sending");
  ring.trySend(message);
  console.log("sent");
} else if (action === "create-mailbox") {
  console.log("creating");
  Mailbox.create({ name: Deno.args[1], capacity: 4 }).close();
  console.log("created");
} else if (action === "create-ring") {
  console.log("creating");
  MessageRing.create({ name: Deno.args[1], capacity: 1024 }).close();
  console.log("created");
} else if (action === "try-send") {
  using ring = MessageRing.open({ name: Deno.args[1] });
  console.log("trying");
  console.log(ring.trySend(new Uint8Array(Number(Deno.args[2]))));
} else if (action === "try-receive") {
  using ring = MessageRing.open({ name: Deno.args[1] });
  console.log("trying");
  console.log(String(ring.tryReceive()));
} else {
  throw new Error(`unknown action ${action}`);
}

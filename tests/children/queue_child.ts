// Child process for message queue tests.
//   send ID TYPES           sends one message per type in TYPES (comma-separated) to
//                           System V queue ID, payload "SENDER:INDEX"
//   receive ID TYPE COUNT   receives COUNT messages of TYPE; prints their payloads as JSON
//   remove ID               removes System V queue ID
import { MessageQueue } from "../../mod.ts";

const [action, id, first, second] = Deno.args;
using queue = MessageQueue.fromId(Number(id));
if (action === "send") {
  const types = first === "" ? [] : first.split(",").map(Number);
  for (const [index, type] of types.entries()) {
    await queue.send(type, `${Deno.pid}:${index}`, { timeout: 30_000 });
  }
} else if (action === "receive") {
  const payloads = [];
  for (let i = 0; i < Number(second); i++) {
    const message = await queue.receive({ type: Number(first), timeout: 30_000 });
    if (message.type !== Number(first)) throw new Error(`got type ${message.type}`);
    payloads.push(message.text());
  }
  console.log(JSON.stringify(payloads));
} else if (action === "remove") {
  queue.remove();
} else {
  throw new Error(`unknown action ${action}`);
}

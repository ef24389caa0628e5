// Child process for mailbox and direct-link crash tests: it kills (SIGKILL) or stops
// (SIGSTOP) itself inside a protocol step, as tests/children/_crash.ts arranges from its
// DENO_IPC_CRASH_* environment.
// Actions:
//   mailbox-send NAME TEXT...             sends each TEXT (send, 5 s timeout); prints "sent"
//   mailbox-try-send NAME TEXT            trySend once; prints its result
//   mailbox-try-receive NAME              tryReceive once; prints the text or null
//   mailbox-receive NAME COUNT            receives COUNT messages (5 s timeout each); prints
//                                         them as a JSON array of texts
//   direct-send NAMESPACE NAME PEER TEXT  opens endpoint NAME, sends TEXT to PEER
import "./_crash.ts";
import { DirectEndpoint, Mailbox } from "../../mod.ts";

const TIMEOUT = { timeout: 5000 };

const [action, ...rest] = Deno.args;
if (action === "mailbox-send") {
  const [name, ...texts] = rest;
  using box = Mailbox.open({ name, senderName: "child" });
  for (const text of texts) await box.send(text, TIMEOUT);
  console.log("sent");
} else if (action === "mailbox-try-send") {
  const [name, text] = rest;
  using box = Mailbox.open({ name, senderName: "child" });
  console.log(JSON.stringify(box.trySend(text)));
} else if (action === "mailbox-try-receive") {
  using box = Mailbox.open({ name: rest[0] });
  console.log(JSON.stringify(box.tryReceive()?.text() ?? null));
} else if (action === "mailbox-receive") {
  const [name, count] = rest;
  using box = Mailbox.open({ name });
  const received: string[] = [];
  for (let i = 0; i < Number(count); i++) received.push((await box.receive(TIMEOUT)).text());
  console.log(JSON.stringify(received));
} else if (action === "direct-send") {
  const [namespace, name, peer, text] = rest;
  using endpoint = DirectEndpoint.open({ name, namespace });
  await endpoint.send(peer, text, TIMEOUT);
  console.log("sent");
} else {
  throw new Error(`unknown action ${action}`);
}

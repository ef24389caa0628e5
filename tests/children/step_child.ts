// Child process that kills (SIGKILL) or stops (SIGSTOP) itself inside a protocol step, at
// the Nth time it reaches the step named in DENO_IPC_STEP (lib/_steps.ts).
//   DENO_IPC_STEP=mailbox.receive.taken   the step
//   DENO_IPC_STEP_AT=N                    which occurrence (default 1)
//   DENO_IPC_STEP_SIGNAL=SIGKILL|SIGSTOP  default SIGKILL; before SIGSTOP it prints
//                                         "stopped STEP" (the parent waits for that line)
// Actions:
//   mailbox-send NAME TEXT...             sends each TEXT (send, 5 s timeout); prints "sent"
//   mailbox-try-send NAME TEXT            trySend once; prints its result
//   mailbox-try-receive NAME              tryReceive once; prints the text or null
//   mailbox-receive NAME COUNT            receives COUNT messages (5 s timeout each); prints
//                                         them as a JSON array of texts
//   direct-send NAMESPACE NAME PEER TEXT  opens endpoint NAME, sends TEXT to PEER
import { DirectEndpoint, Mailbox } from "../../mod.ts";
import { libc } from "../../ffi/libc.ts";
import { setStepHook } from "../../lib/_steps.ts";

const SIGKILL = 9;
const SIGSTOP = 19;
const TIMEOUT = { timeout: 5000 };

const target = Deno.env.get("DENO_IPC_STEP");
const at = Number(Deno.env.get("DENO_IPC_STEP_AT") ?? "1");
const signal = Deno.env.get("DENO_IPC_STEP_SIGNAL") ?? "SIGKILL";
if (target !== undefined) {
  let seen = 0;
  setStepHook((name) => {
    if (name !== target || ++seen !== at) return;
    if (signal === "SIGSTOP") {
      console.log(`stopped ${name}`);
      libc().symbols.raise(SIGSTOP);
    } else {
      libc().symbols.raise(SIGKILL);
    }
  });
}

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

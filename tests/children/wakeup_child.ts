// Child process for the lost-wake-up tests: waits once on a structure the parent made,
// printing "waiting" first and then what it got. Run with DENO_IPC_WAIT_SLICE_MS set
// very long, so that only a wake-up (not the end of a slice) can end the wait in time.
//   ring NAME | ring-send NAME BYTES | textbook NAME | mailbox NAME | rendezvous NAME |
//   direct NAMESPACE
import "./_crash.ts";
import { BoundedBuffer, DirectEndpoint, Mailbox, MessageRing } from "../../mod.ts";

const [kind, name] = Deno.args;
const options = { timeout: 20_000 };

// Prints the result and whether the wait ended before half its timeout: a wait that was
// never woken ends only at its deadline (after one final attempt).
async function report(wait: () => Promise<unknown>): Promise<void> {
  console.log("waiting");
  const started = performance.now();
  const result = await wait();
  const woken = performance.now() - started < options.timeout / 2;
  console.log(JSON.stringify(result instanceof Uint8Array ? Array.from(result) : result));
  console.log(woken ? "woken" : "not woken: the wait ran to its deadline");
}

switch (kind) {
  case "ring": {
    using ring = MessageRing.open({ name });
    await report(() => ring.receive(options));
    break;
  }
  case "ring-send": {
    using ring = MessageRing.open({ name });
    await report(async () => {
      await ring.send(new Uint8Array(Number(Deno.args[2])), options);
      return "sent";
    });
    break;
  }
  case "textbook": {
    using buffer = BoundedBuffer.open({ name });
    await report(() => buffer.receive(options));
    break;
  }
  case "mailbox": {
    using box = Mailbox.open({ name });
    await report(async () => (await box.receive(options)).text());
    break;
  }
  case "rendezvous": {
    using box = Mailbox.open({ name });
    await report(async () => {
      await box.send("taken?", options);
      return "taken";
    });
    break;
  }
  case "direct": {
    using endpoint = DirectEndpoint.open({ name: "Q", namespace: name });
    await report(async () => (await endpoint.receive(options)).text());
    break;
  }
  default:
    throw new Error(`unknown kind ${kind}`);
}

// A participant of a step-level schedule (tests/_step_scheduler.ts). At every named step
// of a protocol operation (lib/_steps.ts) it tells the scheduler where it is and waits
// until the scheduler lets it take that step: the scheduler decides the interleaving of
// all participants' shared-memory steps, and may kill one that waits at a step.
//   step_participant.ts CONTROL INDEX ROLE KIND NAME COUNT
//     ROLE producer: sends COUNT messages [INDEX, seq, ...] then end()
//     ROLE consumer: receives until the end of the stream
//     KIND ring (MessageRing) | textbook (BoundedBuffer, messages of 48 bytes) |
//          mailbox (Mailbox: no end; a consumer receives COUNT messages)
// Prints one JSON line per event: {"e":"inv"|"ok"|"fail", "op", "v", "t"}.
import { sleepSync } from "../../lib/_process.ts";
import { setStepHook } from "../../lib/_steps.ts";
import { testing } from "../../lib/_testing.ts";
import { BoundedBuffer, type Channel, Mailbox, MessageRing, SharedMemory } from "../../mod.ts";
import { SLOT_WORDS, STATE_AT_STEP, STATE_DONE, STATE_RUNNING } from "../_step_scheduler.ts";

const [controlName, indexText, role, kind, objectName, countText] = Deno.args;
const FIXED = 48; // the textbook buffer's item size: every message is padded to it
const index = Number(indexText);
const control = SharedMemory.open({ name: controlName });
const words = control.view(Int32Array, 0, control.size / 4);
const bytes = control.view(Uint8Array, 0, control.size);
const base = index * SLOT_WORDS;
const encoder = new TextEncoder();

function log(event: Record<string, unknown>): void {
  console.log(JSON.stringify({ ...event, t: performance.timeOrigin + performance.now() }));
}

testing.spin = 0;
setStepHook((step) => {
  // Attaching to an object (lib/_lifecycle.ts) comes before any channel step: not scheduled.
  if (step.startsWith("lifecycle.")) return;
  const granted = Atomics.load(words, base + 1);
  const name = encoder.encode(step);
  words[base + 2] = name.length;
  bytes.set(name, (base + 4) * 4);
  Atomics.store(words, base, STATE_AT_STEP);
  Atomics.add(words, base + 3, 1); // a new report: the scheduler sees it after the name
  while (Atomics.load(words, base + 1) === granted) sleepSync(0.05);
  Atomics.store(words, base, STATE_RUNNING);
});

const length = (sequence: number, producer = index) =>
  kind === "textbook" ? FIXED : 8 + ((sequence * 13 + producer * 7) % 40);
const timeout = 120_000;

// The bytes of message `sequence` of `producer`, and the check that a received one is whole.
function message(sequence: number): Uint8Array {
  const bytes = new Uint8Array(length(sequence)).fill(sequence & 0xff);
  new DataView(bytes.buffer).setUint32(0, index, true);
  new DataView(bytes.buffer).setUint32(4, sequence, true);
  return bytes;
}
function received(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const producer = view.getUint32(0, true);
  const sequence = view.getUint32(4, true);
  const intact = bytes.length === length(sequence, producer) &&
    bytes.subarray(8).every((byte) => byte === (sequence & 0xff));
  return intact ? `${producer}:${sequence}` : "CORRUPT";
}

if (kind === "mailbox") {
  const box = Mailbox.open({ name: objectName });
  for (let sequence = 0; sequence < Number(countText); sequence++) {
    if (role === "producer") {
      const v = `${index}:${sequence}`;
      log({ e: "inv", op: "send", v });
      await box.send(message(sequence), { timeout });
      log({ e: "ok", op: "send", v });
    } else {
      log({ e: "inv", op: "receive" });
      const got = await box.receive({ timeout });
      log({ e: "ok", op: "receive", v: received(got.data) });
    }
  }
  setStepHook(undefined);
  box.close();
  Atomics.store(words, base, STATE_DONE);
  control.close();
  Deno.exit(0);
}

const ring: Channel = kind === "ring"
  ? MessageRing.open({ name: objectName })
  : BoundedBuffer.open({ name: objectName });
if (role === "producer") {
  for (let sequence = 0; sequence < Number(countText); sequence++) {
    const v = `${index}:${sequence}`;
    log({ e: "inv", op: "send", v });
    await ring.send(message(sequence), { timeout });
    log({ e: "ok", op: "send", v });
  }
  log({ e: "inv", op: "end" });
  ring.end();
  log({ e: "ok", op: "end" });
} else {
  for (;;) {
    log({ e: "inv", op: "receive" });
    const got = await ring.receive({ timeout });
    if (got === null) {
      log({ e: "ok", op: "receive", v: null });
      break;
    }
    log({ e: "ok", op: "receive", v: received(got) });
  }
}
setStepHook(undefined);
ring.close();
Atomics.store(words, base, STATE_DONE);
control.close();

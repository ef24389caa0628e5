// Victims under a hostile peer (see hostile_child.ts), for the structures that name
// processes and peers: a direct endpoint's registry (owner, peer count, the peer table's
// names) and a doorbell (receiver word, counters, rings in flight). Another handle writes
// random values there between the victim's operations; every operation must work, run
// out its timeout, or throw a typed error; nothing may crash this process, hang past a
// bound, or signal the bystander process whose pid and start time the peer writes in.
//   hostile_registry_child.ts KIND RUNS SEED BYSTANDER_PID BYSTANDER_START
//   KIND: direct | doorbell
import fc from "fast-check";
import { processToken } from "../../lib/_process.ts";
import { DirectEndpoint, Doorbell, ErrnoError, SharedMemory } from "../../mod.ts";

const [kind, runsText, seedText, bystanderText, startText] = Deno.args;
const bystander = Number(bystanderText);
const bystanderStart = Number(startText);

// Words a victim reads. Direct registry: owner, peer count, the waiting flag, arrivals,
// then the first peer slots (length byte and name). Doorbell: in flight, the receiver
// word (two halves), rung, delivered.
const WORDS = kind === "direct" ? [2, 18, 32, 48, 64, 65, 66, 80, 81, 96] : [1, 3, 4, 5, 16, 32];

const value = fc.oneof(
  fc.constantFrom(-1, 0, 1, 9, 12, 40, 64, 255, 256, 2 ** 31 - 1, -(2 ** 31)),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.constant("bystander" as const), // the bystander's pid, start time and SIGUSR2/SIGKILL
);
const command = fc.oneof(
  fc.record({ op: fc.constantFrom("act", "act", "reopen") }),
  fc.record({
    op: fc.constant("corrupt" as const),
    word: fc.oneof(
      { arbitrary: fc.constantFrom(...WORDS), weight: 4 },
      { arbitrary: fc.integer({ min: 0, max: 160 }), weight: 1 },
    ),
    value,
    signal: fc.constantFrom(9, 12),
  }),
);

const allowed = (error: unknown) =>
  error instanceof ErrnoError || error instanceof TypeError || error instanceof RangeError;

await fc.assert(
  fc.asyncProperty(fc.array(command, { maxLength: 25 }), async (commands) => {
    const namespace = `hr${crypto.randomUUID().slice(0, 8)}`;
    let victim: DirectEndpoint | Doorbell;
    let peer: DirectEndpoint | undefined;
    let objectName: string;
    if (kind === "direct") {
      const p = DirectEndpoint.open({ name: "P", namespace });
      peer = DirectEndpoint.open({ name: "Q", namespace });
      await p.send("Q", "hello");
      victim = p;
      objectName = `/deno-ipc-dc.${namespace}.P`;
    } else {
      victim = Doorbell.create();
      objectName = victim.name;
    }
    const hostile = SharedMemory.open({ name: objectName });
    const words = hostile.view(Int32Array, 0, Math.min(hostile.size, 1024) / 4);
    let listening: Disposable | undefined;
    try {
      if (victim instanceof Doorbell) listening = victim.listen();
      for (const command of commands) {
        const started = performance.now();
        try {
          if (command.op === "corrupt") {
            if (command.word >= words.length) continue;
            if (command.value === "bystander" && kind === "doorbell") {
              const word = processToken(bystander, bystanderStart) |
                (BigInt(command.signal) << 24n);
              Atomics.store(hostile.view(BigInt64Array, 0, 4), 2, word);
            } else if (command.value === "bystander") {
              words[command.word] = bystander;
            } else {
              words[command.word] = command.value;
            }
          } else if (command.op === "reopen") {
            if (victim instanceof Doorbell) Doorbell.open({ name: objectName }).close();
            else peer!.send("P", "from Q", { timeout: 20 }).catch(() => {});
          } else if (victim instanceof Doorbell) {
            victim.ring();
            await victim.wait({ timeout: 20 }).catch((error) => {
              if (!allowed(error)) throw error;
            });
          } else {
            await victim.receive({ timeout: 20 }).catch((error) => {
              if (!allowed(error)) throw error;
            });
            await victim.send("Q", "again", { timeout: 20 });
          }
        } catch (error) {
          if (!allowed(error)) throw error;
        }
        const elapsed = performance.now() - started;
        if (elapsed > 2000) throw new Error(`${command.op} took ${elapsed.toFixed(0)} ms`);
      }
    } finally {
      listening?.[Symbol.dispose]();
      hostile.close();
      if (victim instanceof Doorbell) {
        victim.close();
        victim.unlink();
      } else {
        try {
          victim.unlink();
        } catch { /* corrupted: removed by name below */ }
        try {
          peer!.unlink();
        } catch { /* as above */ }
        victim.close();
        peer!.close();
        for (const entry of Deno.readDirSync("/dev/shm")) {
          if (entry.name.startsWith(`deno-ipc-dc.${namespace}.`)) {
            Deno.removeSync(`/dev/shm/${entry.name}`);
          }
        }
      }
    }
  }),
  { numRuns: Number(runsText), seed: Number(seedText) },
);
console.log(`ok ${runsText}`);

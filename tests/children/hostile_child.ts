// A victim under a hostile peer: runs a fast-check property in which another handle
// writes random values into random words of a structure's header and records between the
// victim's operations. Every operation must work or throw CorruptedError (a wait may also
// run out its timeout); nothing may crash this process, grow its memory beyond a bound, or
// hand it bytes from outside the object. The parent checks the exit status.
//   hostile_child.ts KIND RUNS SEED      KIND: ring | textbook | semaphore
// Prints "ok RUNS" at the end, or throws (exit status 1) with the counterexample.
import fc from "fast-check";
import {
  BoundedBuffer,
  type Channel,
  CorruptedError,
  ErrnoError,
  MessageRing,
  SemaphoreBoundedBuffer,
  SharedMemory,
} from "../../mod.ts";

const [kind, runsText, seedText] = Deno.args;
const SECRET = 0x5a; // bytes of another object: never part of what the victim receives
const MEMORY_BOUND = 64 * 2 ** 20;
// Ring: capacity, flags, producers, head, last sender, tail, last receiver, the locks,
// ended; NEXT_RECORD is the length word of the record at the tail.
const NEXT_RECORD = -1;
const RING_WORDS = [2, 3, 4, 16, 17, 32, 33, 48, 49, 64, 65, 112, NEXT_RECORD, NEXT_RECORD];
// Textbook buffer: size, item size, ended, in, out, the two futex flags.
const TEXTBOOK_WORDS = [1, 2, 3, 16, 32, 48, 64];
// Semaphore buffer: the three sem_t (value and waiters words), then size, item size,
// ended, in, out, count.
const SEMAPHORE_WORDS = [0, 1, 2, 8, 9, 10, 16, 17, 18, 25, 26, 27, 28, 29, 30];
const RING_DATA_WORD = (512 + 64) / 4; // after the header and the slots of 2 producers

function create(multi: boolean): Channel & { name: string; unlink(): void } {
  if (kind === "semaphore") return SemaphoreBoundedBuffer.create({ bufferSize: 4, itemSize: 16 });
  return kind === "ring"
    ? MessageRing.create({
      capacity: 256,
      multiProducer: multi,
      multiConsumer: multi,
      producers: 2,
    })
    : BoundedBuffer.create({ bufferSize: 4, itemSize: 16 });
}

function open(name: string): Channel {
  if (kind === "semaphore") return SemaphoreBoundedBuffer.open({ name });
  return kind === "ring" ? MessageRing.open({ name }) : BoundedBuffer.open({ name });
}

const command = fc.oneof(
  fc.record({ op: fc.constant("send" as const), size: fc.integer({ min: 0, max: 60 }) }),
  fc.record({ op: fc.constant("receive" as const) }),
  fc.record({
    op: fc.constant("corrupt" as const),
    // The words a victim reads (header fields, the length of the next record), or any.
    word: fc.oneof(
      {
        arbitrary: fc.constantFrom(
          ...(kind === "ring"
            ? RING_WORDS
            : kind === "semaphore"
            ? SEMAPHORE_WORDS
            : TEXTBOOK_WORDS),
        ),
        weight: 4,
      },
      { arbitrary: fc.integer({ min: 0, max: 127 + 64 }), weight: 1 },
    ),
    value: fc.oneof(
      fc.constantFrom(-1, -8, 0, 1, 3, 8, 255, 256, 0x7fffffff, -(2 ** 31), 200_000_000),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    ).filter((value) => !new Uint8Array(Int32Array.of(value).buffer).includes(SECRET)),
  }),
  fc.record({ op: fc.constant("reopen" as const) }),
);

// A secret object whose messages pass through the shared small-message pool.
using secret = MessageRing.create({ capacity: 4096 });
const secretMessage = new Uint8Array(500).fill(SECRET);

let rssBefore = Deno.memoryUsage().rss;
try {
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.array(command, { maxLength: 40 }),
      async (multi, commands) => {
        const victim = create(multi);
        const hostile = SharedMemory.open({ name: victim.name });
        const words = hostile.view(Int32Array, 0, Math.min(hostile.size, 192 * 4) / 4);
        try {
          for (const command of commands) {
            // Traffic on another object, through the same pool.
            secret.trySend(secretMessage);
            secret.tryReceive();
            const started = performance.now();
            try {
              switch (command.op) {
                case "send": {
                  const size = kind === "ring" ? command.size : 16;
                  await victim.send(new Uint8Array(size).fill(7), { timeout: 20 });
                  break;
                }
                case "receive": {
                  const message = await victim.receive({ timeout: 20 });
                  if (message instanceof Uint8Array) {
                    if (message.length > 256) throw new Error(`a ${message.length}-byte message`);
                    if (message.includes(SECRET)) throw new Error("another object's bytes");
                  }
                  break;
                }
                case "corrupt": {
                  let word = command.word;
                  if (word === NEXT_RECORD) word = RING_DATA_WORD + ((words[32] & 255) >> 2);
                  if (word < words.length) words[word] = command.value;
                  break;
                }
                case "reopen":
                  open(victim.name).close();
                  break;
              }
            } catch (error) {
              const name = (error as Error).name;
              // Another typed error naming this object is fine too: a semaphore whose value a
              // peer set to SEM_VALUE_MAX cannot be posted (EOVERFLOW).
              const named = error instanceof ErrnoError &&
                (error.objectName ?? "").startsWith(victim.name);
              if (
                !(error instanceof CorruptedError) && name !== "TimedOutError" &&
                name !== "StreamEndedError" && !named
              ) throw error;
            }
            // A liveness bound, not a speed test: every wait here has a 20 ms timeout.
            const elapsed = performance.now() - started;
            if (elapsed > 2000) throw new Error(`${command.op} took ${elapsed.toFixed(0)} ms`);
          }
        } finally {
          hostile.close();
          victim.close();
          victim.unlink();
        }
        const rss = Deno.memoryUsage().rss;
        if (rss - rssBefore > MEMORY_BOUND) {
          throw new Error(`memory grew ${(rss - rssBefore) >> 20} MiB in one run`);
        }
        rssBefore = Math.max(rssBefore, rss);
      },
    ),
    { numRuns: Number(runsText), seed: Number(seedText) },
  );
} finally {
  secret.unlink();
}
console.log(`ok ${runsText}`);

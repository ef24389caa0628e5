// Child process for the corrupted-semaphore property: a hostile peer (played by this
// same process, through a second mapping) writes random words over the semaphores of an
// UnnamedSemaphore and of a SemaphoreBoundedBuffer between operations. Every operation
// must complete or throw CorruptedError (or the error its own state explains) within its
// timeout; a crash, a hang or any other error fails the run. Exits 0 when all runs pass.
//   RUNS SEED
import fc from "fast-check";
import {
  CorruptedError,
  ErrnoError,
  SemaphoreBoundedBuffer,
  SharedMemory,
  TimedOutError,
  UnnamedSemaphore,
} from "../../mod.ts";

const [runs, seed] = Deno.args.map(Number);
const SEMAPHORE_BYTES = 32;
const TIMEOUT_MS = 20;

// Errors an operation may end with when its semaphore holds garbage.
function expected(error: unknown): boolean {
  return error instanceof CorruptedError || error instanceof TimedOutError ||
    // a value garbage set to SEM_VALUE_MAX cannot be posted; an end marker may be read
    (error instanceof ErrnoError && ["EOVERFLOW", "EPIPE"].includes(error.code));
}

async function survives(operation: () => unknown): Promise<void> {
  const started = performance.now();
  try {
    await operation();
  } catch (error) {
    if (!expected(error)) throw error;
  }
  const took = performance.now() - started;
  if (took > TIMEOUT_MS + 1000) throw new Error(`an operation took ${took} ms`);
}

const word = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.constantFrom(0, 1, -1, 0x7fff_ffff, -0x8000_0000, 128, 2),
);
const corruption = fc.record({
  target: fc.nat({ max: 3 }), // the lone semaphore, or empty / full / mutex of the buffer
  words: fc.array(fc.tuple(fc.nat({ max: SEMAPHORE_BYTES / 4 - 1 }), word), {
    minLength: 1,
    maxLength: 8,
  }),
});

const shm = SharedMemory.create({ size: SEMAPHORE_BYTES });
const buffer = SemaphoreBoundedBuffer.create({ bufferSize: 2, itemSize: 1 });
try {
  using hostileLone = SharedMemory.open({ name: shm.name });
  using hostileBuffer = SharedMemory.open({ name: buffer.name });
  using lone = UnnamedSemaphore.init(shm, { value: 1 });
  await fc.assert(
    fc.asyncProperty(fc.array(corruption, { minLength: 1, maxLength: 4 }), async (writes) => {
      for (const { target, words } of writes) {
        const region = target === 0 ? hostileLone : hostileBuffer;
        const at = target === 0 ? 0 : (target - 1) * SEMAPHORE_BYTES;
        const view = region.view(Int32Array, at, SEMAPHORE_BYTES / 4);
        for (const [index, value] of words) view[index] = value;
        await survives(() => lone.value);
        await survives(() => lone.tryWait());
        await survives(() => lone.post());
        await survives(() => lone.wait({ timeout: TIMEOUT_MS }));
        await survives(() => buffer.trySend(new Uint8Array([1])));
        await survives(() => buffer.tryReceive());
        await survives(() => buffer.send(new Uint8Array([2]), { timeout: TIMEOUT_MS }));
        await survives(() => buffer.receive({ timeout: TIMEOUT_MS }));
      }
    }),
    { numRuns: runs, seed },
  );
  console.log("survived");
} finally {
  buffer.close();
  buffer.unlink();
  shm.close();
  shm.unlink();
}

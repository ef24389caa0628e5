// A race condition and its cure. N processes each add 1 to a counter in shared memory
// K times with a plain read-modify-write (`value = counter; counter = value + 1`).
// Without a lock the processes overwrite each other's updates and the total comes out
// short; guarded by a named semaphore used as a mutex, it is exact.
//
//   deno run -A --unstable-net scenarios/critical_section.ts
import { Mutex, NamedSemaphore, SharedMemory } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const PROCESSES = 4;
const UNLOCKED_INCREMENTS = 200_000;
const LOCKED_INCREMENTS = 5_000;

const { role, values } = scenarioArgs();
const COUNTER = "counter (shm)";
const MUTEX = "mutex (semaphore)";
const START = "start (semaphore)";

if (role === "worker") {
  using shm = SharedMemory.open({ name: values.shm });
  using ready = NamedSemaphore.open({ name: values.ready });
  using start = NamedSemaphore.open({ name: values.start });
  const counter = shm.view(Int32Array, 0, 1);
  const increments = Number(values.increments);
  const me = `worker ${values.index}`;
  ready.post();
  await start.wait({ timeout: 30_000 });
  traceEvent(me, "receive", { object: START, label: "go" });
  if (values.lock) {
    using mutex = Mutex.open({ name: values.lock });
    for (let i = 0; i < increments; i++) {
      using _held = await mutex.lock({ timeout: 30_000 });
      const value = counter[0];
      counter[0] = value + 1;
    }
  } else {
    for (let i = 0; i < increments; i++) {
      const value = counter[0];
      counter[0] = value + 1;
    }
  }
  traceEvent(me, "summary", {
    object: values.lock ? MUTEX : COUNTER,
    count: increments,
    label: values.lock ? "lock; counter = counter + 1; unlock" : "counter = counter + 1",
    text: `did ${increments} increments${values.lock ? " under the lock" : ""}`,
  });
} else {
  using shm = SharedMemory.create({ size: 4 });
  using ready = NamedSemaphore.create();
  using start = NamedSemaphore.create();
  using mutex = Mutex.create();
  traceEvent("main", "create", { object: COUNTER, label: "4 bytes" });
  traceEvent("main", "create", { object: START, label: "sem_open" });
  traceEvent("main", "create", { object: MUTEX, label: "sem_open, value 1" });
  try {
    for (const locked of [false, true]) {
      const increments = locked ? LOCKED_INCREMENTS : UNLOCKED_INCREMENTS;
      const counter = shm.view(Int32Array, 0, 1);
      counter[0] = 0;
      trace(
        "main",
        locked
          ? `with a lock: each read-modify-write holds mutex "${mutex.name}"`
          : `without a lock: ${PROCESSES} processes x ${increments} increments of one counter`,
      );
      const workers = Array.from(
        { length: PROCESSES },
        (_, index) =>
          spawnRole(import.meta.url, "worker", {
            index,
            increments,
            shm: shm.name,
            ready: ready.name,
            start: start.name,
            ...(locked ? { lock: mutex.name } : {}),
          }),
      );
      try {
        for (let i = 0; i < PROCESSES; i++) await ready.wait({ timeout: 30_000 });
        for (let i = 0; i < PROCESSES; i++) start.post(); // all start together
        for (let i = 0; i < PROCESSES; i++) {
          traceEvent("main", "send", { object: START, label: "go" });
        }
      } catch (error) {
        for (const worker of workers) worker.kill();
        throw error;
      } finally {
        await Promise.all(workers.map((worker) => worker.status));
      }
      const statuses = await Promise.all(workers.map((worker) => worker.status));
      if (statuses.some((status) => status.code !== 0)) throw new Error("a worker failed");
      const expected = PROCESSES * increments;
      const lost = expected - counter[0];
      trace("main", `expected ${expected}, counter is ${counter[0]}: ${lost} updates lost`);
    }
  } finally {
    shm.unlink();
    ready.unlink();
    start.unlink();
    mutex.unlink();
    for (const object of [COUNTER, START, MUTEX]) traceEvent("main", "unlink", { object });
  }
}

import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  ClosedError,
  ErrnoError,
  Mutex,
  NamedSemaphore,
  NotFoundError,
  SharedMemory,
  TimedOutError,
  UnnamedSemaphore,
} from "../mod.ts";
import { C } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { Child, delay, ipcTest, propertyRuns, runChild, testName } from "./_helpers.ts";

// A wait abandoned by abort or close leaves its last pool-thread slice (at most 100 ms)
// running; tests that abandon one wait this long so that no op outlives the test.
const SLICE_SETTLE_MS = 150;

ipcTest("NamedSemaphore.create() starts at its value with mode 0600", () => {
  using sem = NamedSemaphore.create({ name: testName(), value: 3 });
  try {
    assert.equal(sem.value, 3);
    const stat = Deno.statSync(`/dev/shm/sem.${sem.name.slice(1)}`);
    assert.equal(stat.mode! & 0o777, 0o600);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore.create() is exclusive; open() of a missing name is NotFoundError", () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    assert.throws(
      () => NamedSemaphore.create({ name: sem.name }),
      (e: unknown) =>
        e instanceof AlreadyExistsError && e.code === "EEXIST" && e.syscall === "sem_open" &&
        e.objectName === sem.name,
    );
  } finally {
    sem.unlink();
  }
  assert.throws(() => NamedSemaphore.open({ name: sem.name }), NotFoundError);
  assert.throws(() => NamedSemaphore.unlink(sem.name), NotFoundError);
});

ipcTest("NamedSemaphore.openOrCreate() keeps the value of an existing semaphore", () => {
  const name = testName();
  using first = NamedSemaphore.openOrCreate({ name, value: 2 });
  using second = NamedSemaphore.openOrCreate({ name, value: 9 });
  try {
    assert.equal(second.value, 2);
    second.post();
    assert.equal(first.value, 3);
  } finally {
    NamedSemaphore.unlink(name);
  }
});

ipcTest("NamedSemaphore.tryWait() takes a unit when there is one and never waits", () => {
  using sem = NamedSemaphore.create({ name: testName(), value: 1 });
  try {
    assert.equal(sem.tryWait(), true);
    assert.equal(sem.tryWait(), false);
    assert.equal(sem.value, 0);
  } finally {
    sem.unlink();
  }
});

ipcTest(
  "NamedSemaphore.wait() takes a unit when the value is positive, even with timeout 0",
  async () => {
    using sem = NamedSemaphore.create({ name: testName(), value: 2 });
    try {
      await sem.wait();
      await sem.wait({ timeout: 0 });
      assert.equal(sem.value, 0);
      await assert.rejects(sem.wait({ timeout: 0 }), TimedOutError);
    } finally {
      sem.unlink();
    }
  },
);

ipcTest("NamedSemaphore.wait() times out with TimedOutError naming the semaphore", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    const started = performance.now();
    await assert.rejects(sem.wait({ timeout: 150 }), (e: unknown) => {
      assert.ok(e instanceof TimedOutError);
      assert.equal(e.code, "ETIMEDOUT");
      assert.equal(e.objectName, sem.name);
      assert.match(e.message, /150 ms/);
      return true;
    });
    assert.ok(performance.now() - started >= 145);
    assert.equal(sem.value, 0);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore.wait() rejects with the abort reason and takes no unit", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    const controller = new AbortController();
    const waiting = sem.wait({ signal: controller.signal });
    await delay(20);
    controller.abort(new Error("stop waiting"));
    await assert.rejects(waiting, /stop waiting/);
    // A post after the abort may be taken by the abandoned pool-thread wait: it must
    // be given back.
    sem.post();
    await delay(SLICE_SETTLE_MS);
    assert.equal(sem.value, 1);
    await assert.rejects(sem.wait({ signal: AbortSignal.abort() }), { name: "AbortError" });
    assert.equal(sem.value, 1);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore.close() during a wait rejects it with ClosedError", async () => {
  const sem = NamedSemaphore.create({ name: testName() });
  try {
    const waiting = sem.wait();
    await delay(20);
    sem.close();
    await assert.rejects(waiting, ClosedError);
    await delay(SLICE_SETTLE_MS);
  } finally {
    sem.unlink();
  }
});

ipcTest(
  "NamedSemaphore after close(): every operation throws ClosedError; close() again is fine",
  async () => {
    const sem = NamedSemaphore.create({ name: testName(), value: 1 });
    try {
      sem.close();
      sem.close();
      assert.equal(sem.closed, true);
      assert.throws(() => sem.post(), ClosedError);
      assert.throws(() => sem.tryWait(), ClosedError);
      assert.throws(() => sem.value, ClosedError);
      await assert.rejects(sem.wait(), ClosedError);
      assert.throws(
        () => sem.post(),
        (e: unknown) => e instanceof ErrnoError && e.code === "EBADF" && /closed/.test(e.message),
      );
    } finally {
      sem.unlink();
    }
  },
);

ipcTest("NamedSemaphore: a post in another process wakes a waiter here", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    const waiting = sem.wait({ timeout: 10_000 });
    const child = await runChild("semaphore_child.ts", ["post", sem.name]);
    assert.equal(child.code, 0, child.stderr);
    await waiting;
    assert.equal(sem.value, 0);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore: a post here wakes a waiter in another process", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    await using child = new Child("semaphore_child.ts", ["wait", sem.name, "10000"]);
    assert.equal(await child.line(), "ready");
    await delay(50);
    sem.post();
    assert.equal(await child.line(), "acquired");
    assert.equal((await child.status()).code, 0);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore: a timed wait in another process expires", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    const child = await runChild("semaphore_child.ts", ["wait", sem.name, "100"]);
    assert.equal(child.code, 0, child.stderr);
    assert.deepEqual(child.stdout.trim().split("\n"), ["ready", "TimedOutError"]);
  } finally {
    sem.unlink();
  }
});

ipcTest("NamedSemaphore.wait() does not block the event loop", async () => {
  using sem = NamedSemaphore.create({ name: testName() });
  try {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await assert.rejects(sem.wait({ timeout: 300 }), TimedOutError);
    clearInterval(timer);
    assert.ok(ticks >= 2, `only ${ticks} timer ticks ran during the wait`); // blocked: 0
  } finally {
    sem.unlink();
  }
});

const badSemaphoreArguments: [string, () => unknown, typeof TypeError | typeof RangeError][] = [
  ["a name without a slash", () => NamedSemaphore.create({ name: "x" }), TypeError],
  [
    "a name too long for sem.",
    () => NamedSemaphore.create({ name: "/" + "x".repeat(252) }),
    RangeError,
  ],
  ["a negative value", () => NamedSemaphore.create({ name: testName(), value: -1 }), RangeError],
  ["a fractional value", () => NamedSemaphore.create({ name: testName(), value: 0.5 }), RangeError],
  ["a NaN value", () => NamedSemaphore.create({ name: testName(), value: NaN }), TypeError],
  [
    "a value above SEM_VALUE_MAX",
    () => NamedSemaphore.create({ name: testName(), value: 2 ** 31 }),
    RangeError,
  ],
  ["mode 0o7777", () => NamedSemaphore.create({ name: testName(), mode: 0o7777 }), RangeError],
  // deno-lint-ignore no-explicit-any
  ["options that are a string", () => NamedSemaphore.create("/x" as any), TypeError],
  // deno-lint-ignore no-explicit-any
  ["open without a name", () => NamedSemaphore.open({} as any), TypeError],
];

for (const [why, call, ErrorClass] of badSemaphoreArguments) {
  ipcTest(`NamedSemaphore rejects ${why} before any syscall`, () => {
    assert.throws(call, ErrorClass);
  });
}

const badWaitOptions: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ["a negative timeout", { timeout: -1 }, RangeError],
  ["a NaN timeout", { timeout: NaN }, TypeError],
  ["a string timeout", { timeout: "10" }, TypeError],
  ["a signal that is not an AbortSignal", { signal: {} }, TypeError],
  ["options that are a number", 5, TypeError],
];

for (const [why, options, ErrorClass] of badWaitOptions) {
  ipcTest(`NamedSemaphore.wait() rejects ${why} and takes no unit`, async () => {
    using sem = NamedSemaphore.create({ name: testName(), value: 1 });
    try {
      // deno-lint-ignore no-explicit-any
      await assert.rejects(sem.wait(options as any), ErrorClass);
      assert.equal(sem.value, 1);
    } finally {
      sem.unlink();
    }
  });
}

ipcTest("NamedSemaphore.post() at SEM_VALUE_MAX is EOVERFLOW and the process survives", () => {
  using sem = NamedSemaphore.create({ name: testName(), value: 2 ** 31 - 1 });
  try {
    assert.throws(
      () => sem.post(),
      (e: unknown) => e instanceof ErrnoError && e.code === "EOVERFLOW",
    );
    assert.equal(sem.value, 2 ** 31 - 1);
  } finally {
    sem.unlink();
  }
});

ipcTest("UnnamedSemaphore.init() places semaphores side by side in one region", async () => {
  using shm = SharedMemory.create({ name: testName(), size: 3 * UnnamedSemaphore.SIZE });
  try {
    using a = UnnamedSemaphore.init(shm, { value: 1 });
    using b = UnnamedSemaphore.init(shm, { byteOffset: 32, value: 2 });
    using c = UnnamedSemaphore.init(shm, { byteOffset: 64 });
    assert.deepEqual([a.value, b.value, c.value], [1, 2, 0]);
    await b.wait();
    c.post();
    assert.deepEqual([a.value, b.value, c.value], [1, 1, 1]);
    assert.equal(b.name, `${shm.name}@32`);
  } finally {
    shm.unlink();
  }
});

ipcTest("UnnamedSemaphore rejects placements outside, unaligned or in a too small region", () => {
  using shm = SharedMemory.create({ name: testName(), size: 40 });
  using tiny = SharedMemory.create({ name: testName(), size: 16 });
  try {
    assert.throws(() => UnnamedSemaphore.init(shm, { byteOffset: 4 }), RangeError);
    assert.throws(() => UnnamedSemaphore.init(shm, { byteOffset: 16 }), RangeError);
    assert.throws(() => UnnamedSemaphore.attach(shm, { byteOffset: -8 }), RangeError);
    assert.throws(() => UnnamedSemaphore.init(tiny), RangeError);
    assert.throws(() => UnnamedSemaphore.init(shm, { value: -1 }), RangeError);
  } finally {
    shm.unlink();
    tiny.unlink();
  }
});

ipcTest("UnnamedSemaphore keeps the region mapped until it is closed", async () => {
  const shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
  try {
    using sem = UnnamedSemaphore.init(shm, { value: 1 });
    shm.close();
    assert.throws(() => shm.bytes, ClosedError);
    assert.equal(sem.tryWait(), true);
    sem.post();
    await sem.wait();
    sem.destroy();
    assert.throws(() => sem.post(), ClosedError);
    assert.throws(() => UnnamedSemaphore.attach(shm), ClosedError);
  } finally {
    SharedMemory.unlink(shm.name);
  }
});

ipcTest(
  "UnnamedSemaphore: closing the region during a wait does not crash the process",
  async () => {
    const shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
    try {
      const sem = UnnamedSemaphore.init(shm);
      const waiting = sem.wait();
      await delay(20);
      shm.close();
      sem.close();
      await assert.rejects(waiting, ClosedError);
      await delay(SLICE_SETTLE_MS);
    } finally {
      SharedMemory.unlink(shm.name);
    }
  },
);

ipcTest("UnnamedSemaphore: a post in another process wakes a waiter here, and back", async () => {
  using shm = SharedMemory.create({ name: testName(), size: 64 });
  try {
    using sem = UnnamedSemaphore.init(shm, { byteOffset: 32 });
    const waiting = sem.wait({ timeout: 10_000 });
    const poster = await runChild("semaphore_child.ts", ["post-unnamed", shm.name, "32"]);
    assert.equal(poster.code, 0, poster.stderr);
    await waiting;

    await using waiter = new Child("semaphore_child.ts", ["wait-unnamed", shm.name, "32"]);
    assert.equal(await waiter.line(), "ready");
    sem.post();
    assert.equal(await waiter.line(), "acquired");
    assert.equal((await waiter.status()).code, 0);
  } finally {
    shm.unlink();
  }
});

ipcTest("Mutex.lock() returns a guard that releases once, by using or by release()", async () => {
  using mutex = Mutex.create({ name: testName() });
  try {
    {
      using _held = await mutex.lock();
      assert.equal(mutex.tryLock(), undefined);
      await assert.rejects(mutex.lock({ timeout: 30 }), TimedOutError);
    }
    const guard = mutex.tryLock();
    assert.ok(guard);
    guard.release();
    guard.release(); // a second release must not unlock a lock someone else holds
    const again = mutex.tryLock();
    assert.ok(again);
    assert.equal(mutex.tryLock(), undefined);
    again.release();
  } finally {
    mutex.unlink();
  }
});

ipcTest(
  "Mutex.openOrCreate() shares one lock; a Mutex over an UnnamedSemaphore works",
  async () => {
    const name = testName();
    using a = Mutex.openOrCreate({ name });
    using b = Mutex.openOrCreate({ name });
    using shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
    try {
      const held = a.tryLock();
      assert.ok(held);
      assert.equal(b.tryLock(), undefined);
      held.release();
      using unnamed = new Mutex(UnnamedSemaphore.init(shm, { value: 1 }));
      using _held = await unnamed.lock();
      assert.equal(unnamed.tryLock(), undefined);
    } finally {
      NamedSemaphore.unlink(name);
      shm.unlink();
    }
  },
);

ipcTest("Mutex: two processes doing read-modify-write under the lock lose no update", async () => {
  using mutex = Mutex.create({ name: testName() });
  using shm = SharedMemory.create({ name: testName(), size: 4 });
  using start = NamedSemaphore.create({ name: testName() });
  try {
    const children = [0, 1].map(() =>
      new Child("semaphore_child.ts", ["locked-add", mutex.name, shm.name, "100", start.name])
    );
    for (const child of children) assert.equal(await child.line(), "ready");
    start.post();
    start.post();
    for (const child of children) assert.equal((await child.status()).code, 0);
    assert.equal(shm.view(Int32Array, 0, 1)[0], 200);
  } finally {
    mutex.unlink();
    shm.unlink();
    start.unlink();
  }
});

ipcTest("Mutex.close() releases the locks its handle holds, for other processes", async () => {
  const mutex = Mutex.create({ name: testName() });
  try {
    using other = Mutex.open({ name: mutex.name });
    const guard = await mutex.lock();
    assert.equal(other.tryLock(), undefined);
    mutex.close();
    guard.release(); // after close: nothing to do, and no error
    const taken = other.tryLock();
    assert.ok(taken, "the lock stayed held after its handle closed");
    taken.release();
    assert.throws(() => mutex.tryLock(), ClosedError);
    await assert.rejects(mutex.lock(), ClosedError);
  } finally {
    NamedSemaphore.unlink(mutex.name);
  }
});

ipcTest("Mutex.lock() racing close() never leaves the lock held for other processes", async () => {
  const name = testName();
  const mutex = Mutex.create({ name });
  try {
    // close() comes before the caller sees lock()'s result: either lock() rejects with
    // ClosedError, or its guard was already released by close() (releasing it again does
    // nothing). Either way the lock is free for everyone else.
    const racing = mutex.lock();
    mutex.close();
    await racing.then(
      (guard) => guard.release(),
      (error) => assert.ok(error instanceof ClosedError, String(error)),
    );
    using other = Mutex.open({ name });
    const guard = other.tryLock();
    assert.ok(guard, "the lock stayed held after close() raced lock()");
    // A lock() that is waiting when its handle closes also ends with ClosedError.
    const third = Mutex.open({ name });
    const waiting = third.lock({ timeout: 5000 });
    await delay(20);
    third.close();
    await assert.rejects(waiting, ClosedError);
    assert.equal(third.closed, true);
    guard.release();
    await delay(SLICE_SETTLE_MS); // the abandoned wait's last slice ends (a unit it took goes back)
    const again = other.tryLock();
    assert.ok(again, "a lock() cancelled by close() kept the lock");
    again.release();
  } finally {
    NamedSemaphore.unlink(name);
  }
});

ipcTest("Mutex.lock() checks its options and signal before taking the lock", async () => {
  const name = testName();
  using mutex = Mutex.create({ name });
  try {
    await assert.rejects(mutex.lock({ timeout: -1 }), RangeError);
    await assert.rejects(mutex.lock(5 as never), TypeError);
    await assert.rejects(mutex.lock({ signal: AbortSignal.abort(new Error("no")) }), /no/);
    const guard = mutex.tryLock();
    assert.ok(guard, "a rejected lock() kept the lock");
    guard.release();
  } finally {
    NamedSemaphore.unlink(name);
  }
});

ipcTest("Mutex.unlink() of a mutex over an unnamed semaphore is a TypeError", () => {
  using shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
  try {
    using mutex = new Mutex(UnnamedSemaphore.init(shm, { value: 1 }));
    assert.throws(() => mutex.unlink(), TypeError);
  } finally {
    shm.unlink();
  }
});

ipcTest(
  "NamedSemaphore.wait() without a timeout outlasts several slices until a post",
  async () => {
    using sem = NamedSemaphore.create({ name: testName() });
    try {
      const waiting = sem.wait();
      const infinite = sem.wait({ timeout: Infinity });
      await delay(350);
      sem.post();
      sem.post();
      await Promise.all([waiting, infinite]);
      assert.equal(sem.value, 0);
    } finally {
      sem.unlink();
    }
  },
);

ipcTest(
  "UnnamedSemaphore.wait() ended by abort takes no unit and leaves the region intact",
  async () => {
    using shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
    try {
      using sem = UnnamedSemaphore.init(shm);
      const controller = new AbortController();
      const waiting = sem.wait({ signal: controller.signal });
      await delay(20);
      controller.abort();
      await assert.rejects(waiting, { name: "AbortError" });
      sem.post();
      await delay(SLICE_SETTLE_MS);
      assert.equal(sem.value, 1);
    } finally {
      shm.unlink();
    }
  },
);

ipcTest("UnnamedSemaphore rejects a non-region, bad offsets and values before any syscall", () => {
  using shm = SharedMemory.create({ name: testName(), size: 64 });
  try {
    // deno-lint-ignore no-explicit-any
    const notRegion = { size: 64, name: "/x", unsafePointer() {}, pin() {} } as any;
    assert.throws(() => UnnamedSemaphore.init(notRegion), TypeError);
    assert.throws(() => UnnamedSemaphore.attach(notRegion), TypeError);
    assert.throws(() => UnnamedSemaphore.init(shm, { byteOffset: NaN }), TypeError);
    assert.throws(() => UnnamedSemaphore.attach(shm, { byteOffset: NaN }), TypeError);
    assert.throws(() => UnnamedSemaphore.init(shm, { value: 2 ** 31 }), RangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => UnnamedSemaphore.init(shm, "0" as any), TypeError);
  } finally {
    shm.unlink();
  }
});

ipcTest("UnnamedSemaphore.destroy() twice is ClosedError the second time", () => {
  using shm = SharedMemory.create({ name: testName(), size: UnnamedSemaphore.SIZE });
  try {
    const sem = UnnamedSemaphore.init(shm);
    sem.destroy();
    assert.throws(() => sem.destroy(), ClosedError);
  } finally {
    shm.unlink();
  }
});

const badOpenArguments: [string, () => unknown, typeof TypeError | typeof RangeError][] = [
  ["openOrCreate with a bad name", () => NamedSemaphore.openOrCreate({ name: "x" }), TypeError],
  [
    "openOrCreate with a negative value",
    () => NamedSemaphore.openOrCreate({ name: testName(), value: -1 }),
    RangeError,
  ],
  [
    "openOrCreate with a bad mode",
    () => NamedSemaphore.openOrCreate({ name: testName(), mode: -1 }),
    RangeError,
  ],
  ["Mutex.open with a bad name", () => Mutex.open({ name: "/a/b" }), TypeError],
  // deno-lint-ignore no-explicit-any
  ["Mutex.openOrCreate without options", () => Mutex.openOrCreate(undefined as any), TypeError],
  ["Mutex.create with a bad mode", () => Mutex.create({ mode: 0o1000 }), RangeError],
];

for (const [why, call, ErrorClass] of badOpenArguments) {
  ipcTest(`NamedSemaphore and Mutex reject ${why} before any syscall`, () => {
    assert.throws(call, ErrorClass);
  });
}

ipcTest("Mutex rejects anything but a semaphore before any syscall", () => {
  // deno-lint-ignore no-explicit-any
  const anything = [undefined, null, {}, { tryWait() {}, post() {} }] as any[];
  for (const value of anything) assert.throws(() => new Mutex(value), TypeError);
});

ipcTest(
  "semaphores: garbage written over a sem_t never kills the process; operations work or throw CorruptedError",
  async () => {
    // Before, glibc's sem_post/sem_clockwait aborted the child (SIGABRT, "The futex
    // facility returned an unexpected error code") within a few runs.
    const result = await runChild("semaphore_corruption_child.ts", [
      `${propertyRuns(30)}`,
      `${Date.now() % 2 ** 31}`,
    ]);
    assert.equal(result.code, 0, `child failed (exit ${result.code}):\n${result.stderr}`);
    assert.equal(result.stdout.trim(), "survived");
  },
);

ipcTest(
  "semaphores: the TypeScript protocol interoperates with glibc's sem_post, sem_trywait and sem_clockwait",
  async () => {
    const { symbols } = libc();
    using shm = SharedMemory.create({ size: UnnamedSemaphore.SIZE });
    try {
      using sem = UnnamedSemaphore.init(shm, { value: 0 });
      const pointer = shm.unsafePointer(0);
      assert.equal(symbols.sem_post(pointer), 0);
      assert.equal(sem.value, 1);
      assert.equal(sem.tryWait(), true);
      sem.post();
      assert.equal(symbols.sem_trywait(pointer), 0);
      assert.equal(symbols.sem_trywait(pointer), -1);
      // A glibc waiter asleep on the futex is woken by our post.
      const deadline = new BigInt64Array(2);
      symbols.clock_gettime(C.CLOCK_MONOTONIC, deadline);
      deadline[0] += 10n;
      const waiting = symbols.sem_clockwait_async(pointer, C.CLOCK_MONOTONIC, deadline);
      while (new Int32Array(shm.buffer, 4, 1)[0] === 0) await delay(1); // it counted itself in
      const started = performance.now();
      sem.post();
      assert.equal(await waiting, 0);
      assert.ok(performance.now() - started < 5000);
      // Our waiter asleep on the futex is woken by glibc's post.
      const ours = sem.wait({ timeout: 10_000 });
      await delay(150); // past the spin, into a futex sleep
      assert.equal(symbols.sem_post(pointer), 0);
      await ours;
      assert.equal(sem.value, 0);
    } finally {
      shm.unlink();
    }
  },
);

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AlreadyExistsError,
  ClosedError,
  ErrnoError,
  NamedSemaphore,
  NotFoundError,
  SharedMemory,
} from "../mod.ts";
import { Child, ipcTest, propertyRuns, runChild, testName } from "./_helpers.ts";

ipcTest("SharedMemory.create() makes an object of the given size with mode 0600", () => {
  const name = testName();
  using shm = SharedMemory.create({ name, size: 10_000 });
  try {
    assert.equal(shm.name, name);
    assert.equal(shm.size, 10_000);
    assert.equal(shm.created, true);
    assert.equal(shm.bytes.length, 10_000);
    const stat = Deno.statSync(`/dev/shm${name}`);
    assert.equal(stat.size, 10_000);
    assert.equal(stat.mode! & 0o777, 0o600);
  } finally {
    shm.unlink();
  }
});

ipcTest(
  "SharedMemory.create() reserves the memory, so a too large size is ENOSPC, not SIGBUS",
  () => {
    const name = testName();
    assert.throws(
      () => SharedMemory.create({ name, size: 2 ** 50 }),
      (e: unknown) => e instanceof ErrnoError && e.code === "ENOSPC" && e.objectName === name,
    );
    // The half-made object was removed again.
    assert.throws(() => SharedMemory.open({ name }), NotFoundError);
  },
);

ipcTest("SharedMemory.create() leaves no temporary name behind, whether it works or fails", () => {
  const temporaries = () =>
    [...Deno.readDirSync("/dev/shm")].filter((entry) =>
      entry.name.startsWith(`.deno-ipc-init.${Deno.pid}.`)
    ).map((entry) => entry.name);
  const name = testName();
  assert.throws(() => SharedMemory.create({ name, size: 2 ** 50 }));
  assert.throws(() =>
    SharedMemory.create({
      name,
      size: 8,
      initialize: () => {
        throw new Error("initialize failed");
      },
    })
  );
  assert.throws(() => SharedMemory.open({ name }), NotFoundError);
  using shm = SharedMemory.create({ name, size: 8 });
  try {
    assert.throws(() => SharedMemory.create({ name, size: 8 }), AlreadyExistsError);
    assert.deepEqual(temporaries(), []);
  } finally {
    shm.unlink();
  }
});

ipcTest("names reserved for objects being created are refused before any syscall", () => {
  const reserved = "/.deno-ipc-init.1.2.0123456789abcdef";
  assert.throws(() => SharedMemory.create({ name: reserved, size: 64 }), RangeError);
  assert.throws(() => SharedMemory.open({ name: reserved }), RangeError);
  assert.throws(() => SharedMemory.openOrCreate({ name: reserved, size: 64 }), RangeError);
});

ipcTest("SharedMemory.create() without a name picks a fresh random one", () => {
  using a = SharedMemory.create({ size: 1 });
  using b = SharedMemory.create({ size: 1 });
  try {
    assert.match(a.name, /^\/deno-ipc-[0-9a-f]{16}$/);
    assert.notEqual(a.name, b.name);
  } finally {
    a.unlink();
    b.unlink();
  }
});

ipcTest("SharedMemory.create() is exclusive: an existing name is AlreadyExistsError", () => {
  using shm = SharedMemory.create({ name: testName(), size: 8 });
  try {
    assert.throws(() => SharedMemory.create({ name: shm.name, size: 8 }), (e: unknown) => {
      assert.ok(e instanceof AlreadyExistsError);
      assert.ok(e instanceof ErrnoError);
      assert.equal(e.code, "EEXIST");
      assert.equal(e.errno, 17);
      assert.equal(e.syscall, "link");
      assert.equal(e.objectName, shm.name);
      assert.match(e.message, /EEXIST/);
      assert.ok(e.message.includes(shm.name));
      return true;
    });
  } finally {
    shm.unlink();
  }
});

ipcTest("SharedMemory.open() of a missing name is NotFoundError", () => {
  const name = testName();
  assert.throws(
    () => SharedMemory.open({ name }),
    (e: unknown) => e instanceof NotFoundError && e.code === "ENOENT" && e.objectName === name,
  );
});

ipcTest("SharedMemory.open() reads the size from the object and sees the same bytes", () => {
  using created = SharedMemory.create({ name: testName(), size: 4096 });
  try {
    using opened = SharedMemory.open({ name: created.name });
    assert.equal(opened.size, 4096);
    assert.equal(opened.created, false);
    created.bytes[4095] = 0xab;
    assert.equal(opened.bytes[4095], 0xab);
    opened.view(Float64Array, 8, 1)[0] = Math.PI;
    assert.equal(created.view(Float64Array, 8, 1)[0], Math.PI);
  } finally {
    created.unlink();
  }
});

ipcTest("SharedMemory.openOrCreate() creates once and then opens", () => {
  const name = testName();
  using first = SharedMemory.openOrCreate({ name, size: 100 });
  using second = SharedMemory.openOrCreate({ name, size: 100 });
  try {
    assert.equal(first.created, true);
    assert.equal(second.created, false);
    assert.equal(second.size, 100);
    assert.throws(
      () => SharedMemory.openOrCreate({ name, size: 200 }),
      (e: unknown) => e instanceof ErrnoError && /fewer than the 200/.test(e.message),
    );
  } finally {
    SharedMemory.unlink(name);
  }
});

ipcTest("SharedMemory.close() detaches views: later reads give undefined, never a crash", () => {
  const shm = SharedMemory.create({ name: testName(), size: 64 });
  try {
    const bytes = shm.bytes;
    const words = shm.view(Int32Array);
    bytes[0] = 1;
    shm.close();
    assert.equal(shm.closed, true);
    assert.equal(bytes.length, 0);
    assert.equal(bytes[0], undefined);
    assert.equal(words[0], undefined);
    bytes[0] = 5; // a write to a detached view does nothing
    assert.throws(() => shm.bytes, ClosedError);
    assert.throws(() => shm.buffer, ClosedError);
    assert.throws(() => shm.view(Uint8Array), ClosedError);
    assert.throws(() => shm.unsafePointer(), ClosedError);
    shm.close(); // idempotent
  } finally {
    shm.unlink();
  }
});

ipcTest("SharedMemory.unlink() keeps existing mappings usable; the name is gone", () => {
  using shm = SharedMemory.create({ name: testName(), size: 16 });
  shm.unlink();
  shm.bytes[3] = 9;
  assert.equal(shm.bytes[3], 9);
  assert.throws(() => SharedMemory.open({ name: shm.name }), NotFoundError);
  assert.throws(() => shm.unlink(), NotFoundError);
  assert.throws(() => SharedMemory.unlink(shm.name), NotFoundError);
});

ipcTest("SharedMemory.view() checks alignment and bounds", () => {
  using shm = SharedMemory.create({ name: testName(), size: 64 });
  try {
    assert.equal(shm.view(Uint16Array).length, 32);
    assert.equal(shm.view(BigInt64Array, 8).length, 7);
    assert.equal(shm.view(Uint8Array, 60, 4).length, 4);
    assert.throws(() => shm.view(Uint32Array, 2), RangeError);
    assert.throws(() => shm.view(Uint8Array, 65), RangeError);
    assert.throws(() => shm.view(Uint8Array, 60, 5), RangeError);
    assert.throws(() => shm.view(Uint8Array, -1), RangeError);
    assert.throws(() => shm.view(Uint8Array, 1.5), RangeError);
    assert.throws(() => shm.view(Uint8Array, Number.NaN), TypeError);
    assert.throws(() => shm.view(Uint8Array, 0, Number.NaN), TypeError);
    assert.throws(() => shm.view(Uint8Array, 0, -1), RangeError);
    assert.throws(() => shm.unsafePointer(64), RangeError);
    assert.throws(() => shm.unsafePointer(-1), RangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => shm.view(Array as any), TypeError);
  } finally {
    shm.unlink();
  }
});

const badNames: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ["no leading slash", "abc", TypeError],
  ["a second slash", "/a/b", TypeError],
  ["NUL", "/a\0b", TypeError],
  ["only a slash", "/", TypeError],
  ["dot-dot", "/..", TypeError],
  ["too long", "/" + "x".repeat(256), RangeError],
  ["too long in UTF-8 bytes", "/" + "é".repeat(128), RangeError],
  ["not a string", 42, TypeError],
  ["null", null, TypeError],
];

for (const [why, name, ErrorClass] of badNames) {
  ipcTest(`SharedMemory rejects a bad name before any syscall: ${why}`, () => {
    // deno-lint-ignore no-explicit-any
    const anyName = name as any;
    assert.throws(() => SharedMemory.create({ name: anyName, size: 1 }), ErrorClass);
    assert.throws(() => SharedMemory.open({ name: anyName }), ErrorClass);
    assert.throws(() => SharedMemory.openOrCreate({ name: anyName, size: 1 }), ErrorClass);
    assert.throws(() => SharedMemory.unlink(anyName), ErrorClass);
  });
}

const badSizes: [unknown, typeof TypeError | typeof RangeError][] = [
  [0, RangeError],
  [-1, RangeError],
  [1.5, RangeError],
  [Number.NaN, TypeError],
  [Infinity, RangeError],
  [2 ** 60, RangeError],
  ["10", TypeError],
  [undefined, TypeError],
  [10n, TypeError],
];

for (const [size, ErrorClass] of badSizes) {
  ipcTest(`SharedMemory.create() rejects size ${String(size)} before any syscall`, () => {
    const name = testName();
    // deno-lint-ignore no-explicit-any
    assert.throws(() => SharedMemory.create({ name, size: size as any }), ErrorClass);
    assert.throws(() => SharedMemory.open({ name }), NotFoundError);
  });
}

const badModes: [unknown, typeof TypeError | typeof RangeError][] = [
  [-1, RangeError],
  [0o1000, RangeError],
  [0.5, TypeError],
  ["0600", TypeError],
];

for (const [mode, ErrorClass] of badModes) {
  ipcTest(`SharedMemory.create() rejects mode ${String(mode)} before any syscall`, () => {
    const name = testName();
    // deno-lint-ignore no-explicit-any
    assert.throws(() => SharedMemory.create({ name, size: 1, mode: mode as any }), ErrorClass);
    assert.throws(() => SharedMemory.open({ name }), NotFoundError);
  });
}

ipcTest("SharedMemory rejects a missing or non-object options argument", () => {
  // deno-lint-ignore no-explicit-any
  const create = SharedMemory.create as (options?: any) => SharedMemory;
  assert.throws(() => create(), TypeError);
  assert.throws(() => create(null), TypeError);
  assert.throws(() => create("name"), TypeError);
});

ipcTest("SharedMemory: bytes written by one process are read by another", async () => {
  using shm = SharedMemory.create({ name: testName(), size: 4096 });
  try {
    const written = await runChild("shm_child.ts", ["write", shm.name, "Hello from a child ✓"]);
    assert.equal(written.code, 0, written.stderr);
    const length = shm.view(Uint32Array, 0, 1)[0];
    assert.equal(
      new TextDecoder().decode(shm.bytes.subarray(4, 4 + length)),
      "Hello from a child ✓",
    );

    const message = new TextEncoder().encode("and back from the parent");
    shm.bytes.set(message, 4);
    shm.view(Uint32Array, 0, 1)[0] = message.length;
    const read = await runChild("shm_child.ts", ["read", shm.name]);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout.trim(), "and back from the parent");
  } finally {
    shm.unlink();
  }
});

ipcTest(
  "SharedMemory: Atomics.add from two processes running at once loses no update",
  async () => {
    using shm = SharedMemory.create({ name: testName(), size: 8 });
    using start = NamedSemaphore.create({ name: testName() });
    try {
      const children = [0, 1].map(() =>
        new Child("shm_child.ts", ["add", shm.name, "2000000", start.name])
      );
      for (const child of children) assert.equal(await child.line(), "ready");
      start.post();
      start.post();
      for (const child of children) assert.equal((await child.status()).code, 0);
      assert.equal(Atomics.load(shm.view(Uint32Array, 0, 1), 0), 4_000_000);
    } finally {
      shm.unlink();
      start.unlink();
    }
  },
);

ipcTest("SharedMemory.openOrCreate() racing in six processes: one creates, all open", async () => {
  for (let round = 0; round < 5; round++) {
    const name = testName("race");
    try {
      const outputs = await Promise.all(
        Array.from({ length: 6 }, () => runChild("shm_child.ts", ["open-or-create", name])),
      );
      for (const output of outputs) assert.equal(output.code, 0, output.stderr);
      const lines = outputs.map((output) => output.stdout.trim()).sort();
      assert.deepEqual(lines, ["created", "opened", "opened", "opened", "opened", "opened"]);
      using shm = SharedMemory.open({ name });
      assert.equal(shm.size, 4096);
      assert.equal(Atomics.load(shm.view(Int32Array, 0, 1), 0), 6);
    } finally {
      SharedMemory.unlink(name);
    }
  }
});

ipcTest(
  "SharedMemory.open() of an object of size 0 (another program's, not sized yet) fails at once",
  () => {
    const name = testName();
    const path = `/dev/shm${name}`;
    Deno.writeFileSync(path, new Uint8Array(0), { mode: 0o600 });
    try {
      assert.throws(
        () => SharedMemory.open({ name }),
        (e: unknown) => e instanceof ErrnoError && e.code === "EINVAL" && /size 0/.test(e.message),
      );
    } finally {
      Deno.removeSync(path);
    }
  },
);

ipcTest(
  "SharedMemory.open() of a sparse object too large for /dev/shm is ENOSPC, not SIGBUS",
  () => {
    const name = testName();
    const path = `/dev/shm${name}`;
    Deno.writeFileSync(path, new Uint8Array(0), { mode: 0o600 });
    try {
      Deno.truncateSync(path, 2 ** 44); // sparse, as another program's ftruncate leaves it
      assert.throws(
        () => SharedMemory.open({ name }),
        (e: unknown) => e instanceof ErrnoError && e.code === "ENOSPC" && e.objectName === name,
      );
    } finally {
      Deno.removeSync(path);
    }
  },
);

ipcTest(
  "SharedMemory.close() after the buffer was transferred leaves the mapping, not a crash",
  () => {
    const shm = SharedMemory.create({ name: testName(), size: 64 });
    try {
      shm.bytes[0] = 42;
      const moved = new Uint8Array(shm.buffer.transfer());
      shm.close();
      assert.equal(shm.closed, true);
      assert.equal(moved[0], 42); // still mapped: reading it is safe
    } finally {
      SharedMemory.unlink(shm.name);
    }
  },
);

ipcTest("SharedMemory pins: a pin keeps working after close, releasing twice is harmless", () => {
  const shm = SharedMemory.create({ name: testName(), size: 64 });
  try {
    const release = shm.pin();
    shm.close();
    assert.throws(() => shm.pin(), ClosedError);
    release();
    release();
    assert.throws(() => shm.unsafePointer(), ClosedError);
  } finally {
    SharedMemory.unlink(shm.name);
  }
});

ipcTest("SharedMemory: writes through one mapping match a model when read through another", () => {
  const size = 512;
  const write = fc.record({
    kind: fc.constant("write" as const),
    offset: fc.nat(size - 1),
    data: fc.uint8Array({ minLength: 1, maxLength: 64 }),
  });
  const read = fc.record({
    kind: fc.constant("read" as const),
    offset: fc.nat(size - 1),
    length: fc.integer({ min: 1, max: 64 }),
  });
  fc.assert(
    fc.property(fc.array(fc.oneof(write, read), { maxLength: 40 }), (operations) => {
      using writer = SharedMemory.create({ name: testName("prop"), size });
      try {
        using reader = SharedMemory.open({ name: writer.name });
        const model = new Uint8Array(size);
        for (const operation of operations) {
          if (operation.kind === "write") {
            const data = operation.data.subarray(0, size - operation.offset);
            writer.bytes.set(data, operation.offset);
            model.set(data, operation.offset);
          } else {
            const end = Math.min(size, operation.offset + operation.length);
            assert.deepEqual(
              reader.bytes.slice(operation.offset, end),
              model.slice(operation.offset, end),
            );
          }
        }
        assert.deepEqual(reader.bytes.slice(), model);
      } finally {
        writer.unlink();
      }
    }),
    { numRuns: propertyRuns(50) },
  );
});

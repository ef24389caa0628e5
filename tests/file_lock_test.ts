// FileLock and MappedFile across real processes: mutual exclusion, shared locks,
// release on SIGKILL, per-handle ownership; mapped contents that persist and are shared.
import assert from "node:assert/strict";
import {
  ClosedError,
  ErrnoError,
  FileLock,
  MappedFile,
  NotFoundError,
  PermissionDeniedError,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest, runChild } from "./_helpers.ts";

function tempDirectory(): { directory: string; cleanup: () => void } {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-lock-" });
  return { directory, cleanup: () => Deno.removeSync(directory, { recursive: true }) };
}

ipcTest(
  "file lock: exclusive locks exclude each other across processes (no lost update)",
  async () => {
    const { directory, cleanup } = tempDirectory();
    try {
      const lockPath = `${directory}/lock`;
      FileLock.open(lockPath, { create: true }).close();
      MappedFile.create(`${directory}/counter`, { size: 4 }).close();
      const rounds = 40;
      const children = [0, 1, 2].map(() =>
        new Child("file_child.ts", ["locked-add", lockPath, `${directory}/counter`, String(rounds)])
      );
      try {
        for (const child of children) assert.equal(await child.line(), "ready");
        for (const child of children) assert.equal(await child.line(), "done");
      } finally {
        for (const child of children) await child[Symbol.asyncDispose]();
      }
      using counter = MappedFile.open(`${directory}/counter`);
      assert.equal(counter.view(Uint32Array, 0, 1)[0], 3 * rounds);
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file lock: shared locks coexist across processes and exclude an exclusive one",
  async () => {
    const { directory, cleanup } = tempDirectory();
    try {
      const path = `${directory}/lock`;
      using lock = FileLock.open(path, { create: true });
      await using child = new Child("file_child.ts", ["lock", path, "shared"]);
      assert.equal(await child.line(), "locked");
      using shared = lock.tryLock({ shared: true });
      assert.ok(shared);
      shared.release();
      assert.equal(lock.tryLock(), undefined);
      assert.deepEqual(lock.conflict(), { shared: true, start: 0, length: 0 });
    } finally {
      cleanup();
    }
  },
);

ipcTest("file lock: a process killed by SIGKILL releases its lock; a waiter gets it", async () => {
  const { directory, cleanup } = tempDirectory();
  try {
    const path = `${directory}/lock`;
    using lock = FileLock.open(path, { create: true });
    const child = new Child("file_child.ts", ["lock", path, "exclusive"]);
    try {
      assert.equal(await child.line(), "locked");
      assert.equal(lock.tryLock(), undefined);
      const waiting = lock.lock({ timeout: 10_000 });
      await delay(20);
      child.process.kill("SIGKILL");
      using _held = await waiting;
      assert.equal((await child.status()).signal, "SIGKILL");
    } finally {
      await child[Symbol.asyncDispose]();
    }
  } finally {
    cleanup();
  }
});

ipcTest(
  "file lock: two handles in one process conflict; ranges; timeout, abort, close",
  async () => {
    const { directory, cleanup } = tempDirectory();
    try {
      const path = `${directory}/lock`;
      using a = FileLock.open(path, { create: true });
      using b = FileLock.open(path);
      const held = a.tryLock({ start: 100, length: 50 });
      assert.ok(held);
      assert.ok(b.tryLock({ start: 0, length: 100 }));
      assert.ok(b.tryLock({ start: 150, length: 10 }));
      assert.equal(b.tryLock({ start: 149, length: 1 }), undefined);
      assert.equal(b.tryLock({ start: 120, shared: true }), undefined);
      await assert.rejects(b.lock({ start: 100, length: 1, timeout: 20 }), TimedOutError);
      const controller = new AbortController();
      const aborted = b.lock({ start: 100, signal: controller.signal });
      controller.abort(new Error("stop"));
      await assert.rejects(aborted, /stop/);
      const waiting = b.lock({ start: 100 });
      await delay(5);
      held.release();
      held.release();
      (await waiting).release();
      const closing = b.lock({ start: 0, length: 1, timeout: 5000 }); // b's own range: at once
      (await closing).release();
      using _again = a.tryLock({ start: 0, length: 1 });
      const blocked = b.lock({ start: 0, length: 1 });
      b.close();
      await assert.rejects(blocked, ClosedError);
      assert.throws(() => b.tryLock(), ClosedError);
      await delay(20);
    } finally {
      cleanup();
    }
  },
);

ipcTest("file lock and mapped file: bad paths, sizes and ranges are typed errors", () => {
  const { directory, cleanup } = tempDirectory();
  try {
    assert.throws(() => FileLock.open(`${directory}/missing`), NotFoundError);
    assert.throws(() => FileLock.open(directory), (e) => (e as ErrnoError).code === "EISDIR");
    new Deno.Command("mkfifo", { args: [`${directory}/fifo`] }).outputSync();
    assert.throws(
      () => FileLock.open(`${directory}/fifo`),
      (e) => (e as ErrnoError).code === "EINVAL",
    );
    assert.throws(
      () => MappedFile.open(`${directory}/fifo`),
      (e) => (e as ErrnoError).code === "EINVAL",
    );
    Deno.writeFileSync(`${directory}/open`, new Uint8Array(8), { mode: 0o666 });
    Deno.chmodSync(`${directory}/open`, 0o666);
    assert.throws(() => FileLock.open(`${directory}/open`), PermissionDeniedError);
    assert.throws(() => MappedFile.open(`${directory}/open`), PermissionDeniedError);
    using _allowed = MappedFile.open(`${directory}/open`, { mode: 0o666 });
    Deno.symlinkSync(`${directory}/open`, `${directory}/link`);
    assert.throws(
      () => MappedFile.open(`${directory}/link`),
      (e) => (e as ErrnoError).code === "ELOOP",
    );
    assert.throws(() => MappedFile.open("/proc/version"), ErrnoError);
    assert.throws(() => MappedFile.open(`${directory}/missing`), NotFoundError);
    assert.throws(
      () => MappedFile.create(`${directory}/open`, { size: 8 }),
      (e) => (e as ErrnoError).code === "EEXIST",
    );
    assert.throws(() => MappedFile.create(`${directory}/zero`, { size: 0 }), RangeError);
    assert.throws(() => MappedFile.create(`${directory}/zero`, { size: 1.5 }), RangeError);
    Deno.writeFileSync(`${directory}/empty`, new Uint8Array(0), { mode: 0o600 });
    assert.throws(
      () => MappedFile.open(`${directory}/empty`),
      (e) => (e as ErrnoError).code === "EINVAL",
    );
    assert.throws(
      () => MappedFile.open(`${directory}/open`, { minimumSize: 9, mode: 0o666 }),
      (e) => (e as ErrnoError).code === "EINVAL",
    );
    using file = MappedFile.create(`${directory}/m`, { size: 16 });
    assert.throws(() => file.view(Int32Array, 2), RangeError);
    assert.throws(() => file.view(Int32Array, 20), RangeError);
    assert.throws(() => file.grow(8), RangeError);
    using lock = FileLock.open(`${directory}/m`);
    assert.throws(() => lock.tryLock({ start: -1 }), RangeError);
    assert.throws(() => lock.tryLock({ length: 0.5 }), RangeError);
    assert.throws(() => lock.tryLock({ shared: 1 as unknown as boolean }), TypeError);
    assert.throws(() => FileLock.open(""), TypeError);
  } finally {
    cleanup();
  }
});

ipcTest(
  "mapped file: another process sees writes, and contents persist after the writer exits",
  async () => {
    const { directory, cleanup } = tempDirectory();
    try {
      const path = `${directory}/shared`;
      using mine = MappedFile.create(path, { size: 4096 });
      const written = await runChild("file_child.ts", ["map-write", path, "written by a child"]);
      assert.equal(written.code, 0, written.stderr);
      // This process's mapping sees the child's write, and so does a later process.
      assert.equal(mine.view(Uint32Array, 0, 1)[0], 18);
      const read = await runChild("file_child.ts", ["map-read", path]);
      assert.equal(read.stdout.trim(), "written by a child");
      mine.close();
      assert.throws(() => mine.bytes, ClosedError);
      const again = await runChild("file_child.ts", ["map-read", path]);
      assert.equal(again.stdout.trim(), "written by a child");
    } finally {
      cleanup();
    }
  },
);

ipcTest("mapped file: grow keeps the contents, detaches old views; close detaches", () => {
  const { directory, cleanup } = tempDirectory();
  try {
    const path = `${directory}/grow`;
    using file = MappedFile.create(path, { size: 8 });
    const old = file.bytes;
    old[3] = 9;
    file.grow(1 << 16);
    assert.equal(old.length, 0);
    assert.equal(file.bytes[3], 9);
    file.bytes[(1 << 16) - 1] = 1;
    assert.equal(Deno.statSync(path).size, 1 << 16);
    file.sync();
    const view = file.view(Uint8Array);
    file.close();
    file.close();
    assert.equal(view.length, 0);
    using reopened = MappedFile.open(path);
    assert.equal(reopened.bytes[(1 << 16) - 1], 1);
  } finally {
    cleanup();
  }
});

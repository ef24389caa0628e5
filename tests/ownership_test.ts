// Ownership: opening an object another user made, or one whose mode lets other users in,
// is refused with PermissionDeniedError naming the object, unless the opener says it
// accepts that (allowOtherOwners, allowModes). Tests run as root: "another user" is a
// child that drops to `nobody` before creating the objects.
import assert from "node:assert/strict";
import {
  BoundedBuffer,
  DirectEndpoint,
  MessageQueue,
  Mutex,
  NamedSemaphore,
  PermissionDeniedError,
  PosixMessageQueue,
  SharedMemory,
} from "../mod.ts";
import { ipcTest, runChild, testName } from "./_helpers.ts";

function refused(name: string, why: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof PermissionDeniedError, `expected PermissionDeniedError: ${error}`);
    assert.equal(error.code, "EACCES");
    assert.ok(error.message.includes(name), `message names ${name}: ${error.message}`);
    assert.match(error.message, why);
    return true;
  };
}

function randomKey(): number {
  return 0x5000_0000 + Math.floor(Math.random() * 0x0fff_ffff);
}

const ignore = (remove: () => void) => {
  try {
    remove();
  } catch { /* already gone */ }
};

ipcTest(
  "Ownership: objects created by another user are refused unless allowOtherOwners",
  async () => {
    const shm = testName("own-shm");
    const semaphore = testName("own-sem");
    const posixQueue = testName("own-pmq");
    const key = randomKey();
    // The registry name of a direct-communication endpoint is predictable: squat it.
    const namespace = `own${crypto.randomUUID().slice(0, 8)}`;
    const squatted = `/deno-ipc-dc.${namespace}.victim`;
    try {
      const child = await runChild("foreign_owner_child.ts", [
        shm,
        semaphore,
        posixQueue,
        `${key}`,
        squatted,
      ]);
      assert.equal(child.code, 0, child.stderr);
      assert.equal(child.stdout.trim(), "created");
      const byNobody = /belongs to uid 65534/;

      assert.throws(() => SharedMemory.open({ name: shm }), refused(shm, byNobody));
      assert.throws(
        () => SharedMemory.openOrCreate({ name: shm, size: 64 }),
        refused(shm, byNobody),
      );
      assert.throws(() => BoundedBuffer.open({ name: shm }), refused(shm, byNobody));
      assert.throws(() => NamedSemaphore.open({ name: semaphore }), refused(semaphore, byNobody));
      assert.throws(
        () => NamedSemaphore.openOrCreate({ name: semaphore, value: 1 }),
        refused(semaphore, byNobody),
      );
      assert.throws(() => Mutex.open({ name: semaphore }), refused(semaphore, byNobody));
      assert.throws(
        () => PosixMessageQueue.open({ name: posixQueue }),
        refused(posixQueue, byNobody),
      );
      assert.throws(
        () => PosixMessageQueue.openOrCreate({ name: posixQueue }),
        refused(posixQueue, byNobody),
      );
      assert.throws(() => MessageQueue.open({ key }), refused("queue ", byNobody));
      assert.throws(() => MessageQueue.openOrCreate({ key }), refused("queue ", byNobody));
      assert.throws(
        () => DirectEndpoint.open({ name: "victim", namespace }),
        refused(squatted, byNobody),
      );

      // Accepted when the caller says so.
      using region = SharedMemory.open({ name: shm, allowOtherOwners: true });
      assert.equal(region.size, 4096);
      using sem = NamedSemaphore.open({ name: semaphore, allowOtherOwners: true });
      assert.equal(sem.tryWait(), true);
      using pmq = PosixMessageQueue.open({ name: posixQueue, allowOtherOwners: true });
      assert.equal(pmq.trySend("hello"), true);
      using queue = MessageQueue.open({ key, allowOtherOwners: true });
      assert.throws(() => MessageQueue.fromId(queue.id), refused(`queue ${queue.id}`, byNobody));
      assert.equal(queue.trySend(1, "hello"), true);
    } finally {
      ignore(() => SharedMemory.unlink(shm));
      ignore(() => SharedMemory.unlink(squatted));
      ignore(() => NamedSemaphore.unlink(semaphore));
      ignore(() => PosixMessageQueue.unlink(posixQueue));
      ignore(() => MessageQueue.open({ key, allowOtherOwners: true }).remove());
    }
  },
);

ipcTest(
  "Ownership: group/other mode bits are refused unless allowModes (or openOrCreate's mode) allows them",
  () => {
    const shm = testName("mode-shm");
    const semaphore = testName("mode-sem");
    const posixQueue = testName("mode-pmq");
    const key = randomKey();
    try {
      SharedMemory.create({ name: shm, size: 64 }).close();
      Deno.chmodSync(`/dev/shm${shm}`, 0o644);
      NamedSemaphore.create({ name: semaphore, value: 1 }).close();
      Deno.chmodSync(`/dev/shm/sem.${semaphore.slice(1)}`, 0o660);
      PosixMessageQueue.create({ name: posixQueue, maxMessages: 1, messageSize: 64, mode: 0o604 })
        .close();
      MessageQueue.create({ key, mode: 0o666 }).close();

      const mode = (bits: string) => new RegExp(`mode 0o${bits} gives group/other access`);
      assert.throws(() => SharedMemory.open({ name: shm }), refused(shm, mode("644")));
      assert.throws(
        () => NamedSemaphore.open({ name: semaphore }),
        refused(semaphore, mode("660")),
      );
      assert.throws(
        () => PosixMessageQueue.open({ name: posixQueue }),
        refused(posixQueue, mode("604")),
      );
      assert.throws(() => MessageQueue.open({ key }), refused("queue ", mode("666")));
      // Too little allowed is still refused.
      assert.throws(
        () => SharedMemory.open({ name: shm, allowModes: 0o040 }),
        refused(shm, /0o004/),
      );
      assert.throws(
        () => MessageQueue.open({ key, allowModes: 0o660 }),
        refused("queue ", /0o006/),
      );

      SharedMemory.open({ name: shm, allowModes: 0o044 }).close();
      SharedMemory.openOrCreate({ name: shm, size: 64, mode: 0o644 }).close();
      NamedSemaphore.open({ name: semaphore, allowModes: 0o060 }).close();
      NamedSemaphore.openOrCreate({ name: semaphore, mode: 0o660 }).close();
      PosixMessageQueue.open({ name: posixQueue, allowModes: 0o004 }).close();
      MessageQueue.open({ key, allowModes: 0o066 }).close();
      MessageQueue.openOrCreate({ key, mode: 0o666 }).close();
    } finally {
      ignore(() => SharedMemory.unlink(shm));
      ignore(() => NamedSemaphore.unlink(semaphore));
      ignore(() => PosixMessageQueue.unlink(posixQueue));
      ignore(() => MessageQueue.open({ key, allowModes: 0o077 }).remove());
    }
  },
);

ipcTest("Ownership: structures opened through shared memory are checked too", () => {
  using buffer = BoundedBuffer.create({ bufferSize: 2, itemSize: 1, mode: 0o640 });
  try {
    assert.throws(() => BoundedBuffer.open({ name: buffer.name }), refused(buffer.name, /0o640/));
    BoundedBuffer.open({ name: buffer.name, allowModes: 0o040 }).close();
  } finally {
    buffer.unlink();
  }
});

ipcTest("Ownership: bad ownership options are a TypeError or RangeError naming them", () => {
  const name = testName("opt");
  assert.throws(() => SharedMemory.open({ name, allowModes: 0o1000 }), /allowModes/);
  assert.throws(() => SharedMemory.open({ name, allowModes: "0o66" as never }), TypeError);
  assert.throws(
    () => NamedSemaphore.open({ name, allowOtherOwners: 1 as never }),
    (e: unknown) => e instanceof TypeError && /allowOtherOwners/.test(e.message),
  );
});

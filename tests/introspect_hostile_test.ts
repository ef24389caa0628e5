// Introspection of objects that are corrupted, half-created or not ours to read, and
// opens racing clean-ups: list and inspect report, never crash or hang; an open racing a
// clean-up gets the object intact or a NotFoundError, and a live user's object survives.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  cleanupDead,
  Fifo,
  type IpcObject,
  listObjects,
  Mailbox,
  MessageQueue,
  MessageRing,
  NotFoundError,
  PosixMessageQueue,
  SharedMemory,
} from "../mod.ts";
import { C } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { currentPid, currentStartTime } from "../lib/_process.ts";
import { Child, delay, ipcTest, propertyRuns, runChild, testName } from "./_helpers.ts";

const STATES = [
  "live",
  "dead",
  "initializing",
  "removing",
  "corrupted",
  "other-user",
  "unknown",
];
const cli = new URL("../cli.ts", import.meta.url).pathname;

function find(name: string): IpcObject | undefined {
  return listObjects({ scanMappings: false }).find((o) => o.name === name);
}

async function inspectWithCli(name: string): Promise<{ code: number; stdout: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "inspect", name],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

function unlinkQuietly(name: string): void {
  try {
    SharedMemory.unlink(name);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
}

// Each mutation of a ring's bytes, and the problem the lister must name.
const RING_MUTATIONS: [string, (view: DataView, size: number) => void, RegExp][] = [
  ["capacity", (v) => v.setInt32(8, 1000, true), /capacity 1000/],
  ["flags", (v) => v.setInt32(12, 0x40, true), /flags/],
  ["producers", (v) => v.setInt32(16, -3, true), /producers -3/],
  ["positions", (v) => v.setInt32(64, 5, true), /positions/],
  ["identity offset", (v) => v.setInt32(24, 64, true), /identity offset 64/],
  ["identity magic", (v, size) => v.setInt32(size - 256, 0x1234, true), /identity magic/],
  ["identity slots", (v, size) => v.setInt32(size - 256 + 44, 9999, true), /slot count/],
  ["creation time", (v, size) => v.setFloat64(size - 256 + 24, NaN, true), /creation time/],
  // Finite, but past the last date a Date can hold: toISOString would throw.
  ["late creation time", (v, size) => v.setFloat64(size - 256 + 24, 1e20, true), /creation time/],
];

ipcTest(
  "list and inspect report each corrupted field of a ring, and a truncated ring, without throwing",
  async () => {
    const name = testName("life-corrupt");
    MessageRing.create({ name, capacity: 1024 }).close();
    try {
      const shm = SharedMemory.open({ name });
      const pristine = shm.bytes.slice();
      try {
        for (const [field, mutate, problem] of RING_MUTATIONS) {
          shm.bytes.set(pristine);
          mutate(new DataView(shm.buffer), shm.size);
          const object = find(name);
          assert.equal(object?.state, "corrupted", field);
          assert.match(object!.problem!, problem, field);
          const inspected = await inspectWithCli(name);
          assert.equal(inspected.code, 0, field);
          assert.match(inspected.stdout, /state\s+corrupted/, field);
        }
        shm.bytes.set(pristine);
      } finally {
        shm.close();
      }
      assert.equal(find(name)?.state, "live", "restored, its creator (this process) alive");
      // Shrunk below its header: read with pread, never mapped, so no SIGBUS.
      Deno.truncateSync(`/dev/shm${name}`, 100);
      assert.equal(find(name)?.state, "corrupted");
      Deno.truncateSync(`/dev/shm${name}`, 0);
      assert.equal(find(name)?.kind, "shm");
    } finally {
      unlinkQuietly(name);
    }
  },
);

ipcTest(
  "half-created objects: a live creator's temporary is initializing, a dead one's is removed by cleanupDead; FIFOs, symbolic links and sockets are not listed",
  () => {
    const random = crypto.randomUUID().slice(0, 8);
    const live = `.deno-ipc-init.${currentPid()}.${currentStartTime()}.${random}`;
    // pid 1 is alive, but not with this start time: a reused pid must not keep it alive.
    const dead = `.deno-ipc-init.1.${currentStartTime() + 12345}.${random}`;
    const fifo = `/dev/shm/${testName("life-fifo").slice(1)}`;
    try {
      Deno.writeFileSync(`/dev/shm/${live}`, new Uint8Array(0), { mode: 0o600 });
      Deno.writeFileSync(`/dev/shm/${dead}`, new Uint8Array(64), { mode: 0o600 });
      Fifo.create(fifo); // not a regular file: skipped, and never opened in a way that waits
      // Nor are a symbolic link (shm_open never follows one) and a Unix socket: not ours
      // to report as another user's objects.
      Deno.symlinkSync("/etc/hostname", `${fifo}-link`);
      using _socket = Deno.listen({ transport: "unix", path: `${fifo}-socket` });
      const objects = listObjects();
      assert.equal(objects.find((o) => o.name === `/${live}`)?.state, "initializing");
      assert.equal(objects.find((o) => o.name === `/${dead}`)?.state, "dead");
      for (const suffix of ["", "-link", "-socket"]) {
        assert.equal(objects.find((o) => o.name === fifo.slice(8) + suffix), undefined, suffix);
      }
      const result = cleanupDead({ names: [`/${live}`, `/${dead}`] });
      assert.deepEqual(result.removed.map((e) => e.name), [`/${dead}`]);
      assert.ok(Deno.statSync(`/dev/shm/${live}`).isFile);
    } finally {
      for (
        const path of [
          `/dev/shm/${live}`,
          `/dev/shm/${dead}`,
          fifo,
          `${fifo}-link`,
          `${fifo}-socket`,
        ]
      ) {
        try {
          Deno.removeSync(path);
        } catch { /* removed */ }
      }
    }
  },
);

// [offset of the magic, magic, version in word 1 (0: none)] of every kind.
const MAGICS: [number, number, number][] = [
  [0, 0x52_50_49_44, 3],
  [0, 0x4d_42_4f_58, 4],
  [0, 0x42_42_49_44, 0],
  [96, 0x42_53_49_44, 0],
  [0, 0x44_49_52_43, 3],
  [0, 0x4c_42_49_44, 2],
];

ipcTest("property: listing hostile bytes behind every kind's magic never throws", () => {
  const name = testName("life-fuzz");
  try {
    fc.assert(
      fc.property(
        fc.constantFrom(...MAGICS),
        fc.integer({ min: 0, max: 4096 }),
        fc.uint8Array({ minLength: 0, maxLength: 4096 }),
        fc.boolean(),
        ([offset, magic, version], size, noise, withIdentity) => {
          const bytes = new Uint8Array(size);
          bytes.set(noise.subarray(0, size));
          const view = new DataView(bytes.buffer);
          if (size >= offset + 4) view.setInt32(offset, magic, true);
          if (version !== 0 && size >= 8 && noise[0] % 4 !== 0) view.setInt32(4, version, true);
          if (withIdentity && size >= 512) {
            view.setInt32(24, size - 256, true); // where several kinds keep the offset
            view.setInt32(size - 256, 0x46_4c_49_44, true);
            view.setInt32(size - 252, 1, true);
            view.setInt32(size - 256 + 44, 24, true);
          }
          Deno.writeFileSync(`/dev/shm${name}`, bytes, { mode: 0o600 });
          const object = find(name);
          assert.ok(object !== undefined);
          assert.ok(STATES.includes(object.state), object.state);
          assert.doesNotThrow(() => JSON.stringify(object));
        },
      ),
      { numRuns: propertyRuns(150) },
    );
  } finally {
    unlinkQuietly(name);
  }
});

// A ring whose creator is dead: created here, its creator token then replaced by pid 1
// with another start time (a reused pid), and this process's handle closed.
function ringOfTheDead(name: string): void {
  const ring = MessageRing.create({ name, capacity: 1024 });
  ring.close();
  using shm = SharedMemory.open({ name });
  const view = new DataView(shm.buffer);
  const life = view.getInt32(24, true);
  view.setBigInt64(life + 16, (BigInt(currentStartTime() + 999) << 32n) | 1n, true);
}

ipcTest(
  "property: opens racing clean-ups get the ring intact or NotFoundError; a held ring is never removed",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 0, max: 12 }),
        fc.integer({ min: 1, max: 3 }),
        async (opens, wait, cleanups) => {
          const name = testName("life-race");
          ringOfTheDead(name);
          await using opener = new Child("lifecycle_child.ts", ["race", name, String(opens)]);
          try {
            assert.equal(await opener.line(), "ready");
            await delay(wait);
            let removed = false;
            for (let i = 0; i < cleanups; i++) {
              // Without the /proc maps safety net: the mark and the attachments decide.
              const result = cleanupDead({ names: [name], scanMappings: false });
              removed ||= result.removed.some((e) => e.name === name);
              await delay(i);
            }
            // The child threw nothing but NotFoundError (it would exit without this line).
            const report = JSON.parse(await opener.line()) as { holding: boolean };
            const after = find(name);
            if (report.holding) {
              assert.ok(!removed, "a ring a live process holds was removed");
              assert.equal(after?.state, "live");
              assert.equal(after?.details.capacity, 1024);
            }
            if (removed) assert.equal(after, undefined);
            opener.process.kill("SIGKILL");
            await opener.status();
            cleanupDead({ names: [name] });
            assert.equal(find(name), undefined, "removed once its users are dead");
          } finally {
            unlinkQuietly(name);
          }
        },
      ),
      { numRuns: propertyRuns(6) },
    );
  },
);

ipcTest(
  "an object of another user is listed but never read, and its temporaries are not dead",
  () => {
    const name = testName("life-other");
    const bytes = new Uint8Array(1024);
    new DataView(bytes.buffer).setInt32(0, 0x52_50_49_44, true); // a ring's magic
    Deno.writeFileSync(`/dev/shm${name}`, bytes, { mode: 0o600 });
    try {
      Deno.chownSync(`/dev/shm${name}`, 65534, 65534);
      const object = find(name);
      assert.equal(object?.state, "other-user");
      assert.equal(object?.kind, "shm", "its header was not read");
      assert.equal(object?.uid, 65534);
      assert.deepEqual(cleanupDead({ names: [name] }).removed, []);
      // Nor is another user's temporary of a dead creator ours to call dead.
      const temporary = `/.deno-ipc-init.1.${currentStartTime() + 12345}.${name.slice(1)}`;
      Deno.writeFileSync(`/dev/shm${temporary}`, new Uint8Array(8), { mode: 0o600 });
      try {
        Deno.chownSync(`/dev/shm${temporary}`, 65534, 65534);
        assert.equal(find(temporary)?.state, "other-user");
      } finally {
        unlinkQuietly(temporary);
      }
    } finally {
      unlinkQuietly(name);
    }
  },
);

// Waits until the process is stopped (state T in /proc/PID/stat).
async function untilStopped(pid: number): Promise<void> {
  const started = performance.now();
  while (!/^\d+ \(.*\) T /.test(Deno.readTextFileSync(`/proc/${pid}/stat`))) {
    if (performance.now() - started > 10_000) throw new Error(`process ${pid} did not stop`);
    await delay(5);
  }
}

function stoppedAt(step: string, args: string[]): Child {
  return new Child("lifecycle_child.ts", args, ["-A"], {
    DENO_IPC_CRASH_AT: step,
    DENO_IPC_CRASH_SIGNAL: "STOP",
  });
}

// Kills the mutant "the cleaner decides from what it saw before marking": an opener that
// took its slot after the cleaner's listing, but before its mark, must be seen after it.
ipcTest(
  "a slot taken between a cleaner's listing and its mark is seen after the mark: the ring stays, the opener gets it",
  async () => {
    const name = testName("life-step-open");
    ringOfTheDead(name);
    try {
      await using cleaner = stoppedAt("lifecycle.clean.marking", ["clean", name]);
      await untilStopped(cleaner.process.pid);
      await using opener = stoppedAt("lifecycle.attach.claimed", ["race", name, "0"]);
      assert.equal(await opener.line(), "ready");
      await untilStopped(opener.process.pid);
      cleaner.process.kill("SIGCONT");
      const result = JSON.parse(await cleaner.line());
      assert.deepEqual(result.removed, []);
      assert.match(result.kept[0]?.reason ?? "", /in use/);
      opener.process.kill("SIGCONT");
      assert.deepEqual(JSON.parse(await opener.line()), { ok: 1, notFound: 0, holding: true });
      assert.equal(find(name)?.state, "live");
    } finally {
      unlinkQuietly(name);
    }
  },
);

// Kills the mutant "an opener does not look at the mark": it would get a ring that the
// cleaner goes on to remove.
ipcTest(
  "an open while a cleaner has marked the ring is NotFoundError; the cleaner then removes it",
  async () => {
    const name = testName("life-step-clean");
    ringOfTheDead(name);
    try {
      await using cleaner = stoppedAt("lifecycle.clean.marked", ["clean", name]);
      await untilStopped(cleaner.process.pid);
      assert.equal(find(name)?.state, "removing");
      assert.throws(() => MessageRing.open({ name }), NotFoundError);
      cleaner.process.kill("SIGCONT");
      const result = JSON.parse(await cleaner.line());
      assert.deepEqual(result.removed.map((e: { name: string }) => e.name), [name]);
      assert.equal(find(name), undefined);
    } finally {
      unlinkQuietly(name);
    }
  },
);

// A cleaner that died between marking and deciding leaves its mark: the next opener
// clears it and gets the ring.
ipcTest("a mark left by a cleaner killed while deciding does not keep openers out", async () => {
  const name = testName("life-step-killed");
  ringOfTheDead(name);
  try {
    await using cleaner = new Child("lifecycle_child.ts", ["clean", name], ["-A"], {
      DENO_IPC_CRASH_AT: "lifecycle.clean.marked",
    });
    assert.equal((await cleaner.status()).signal, "SIGKILL");
    using ring = MessageRing.open({ name });
    assert.equal(ring.capacity, 1024);
    assert.equal(find(name)?.state, "live");
  } finally {
    unlinkQuietly(name);
  }
});

// A cleaner that died after sealing, before it removed the name, leaves an object nobody
// can open: the next clean-up must finish the removal, or it stays forever.
ipcTest(
  "a ring sealed by a cleaner killed before it removed the name is removed by the next clean-up",
  async () => {
    const name = testName("life-step-sealed");
    ringOfTheDead(name);
    try {
      await using cleaner = new Child("lifecycle_child.ts", ["clean", name], ["-A"], {
        DENO_IPC_CRASH_AT: "lifecycle.clean.sealed",
      });
      assert.equal((await cleaner.status()).signal, "SIGKILL");
      assert.throws(() => MessageRing.open({ name }), NotFoundError);
      assert.equal(find(name)?.state, "dead", "sealed, and no live process left to remove it");
      const result = cleanupDead({ names: [name] });
      assert.deepEqual(result.removed.map((e) => e.name), [name]);
      assert.equal(find(name), undefined);
    } finally {
      unlinkQuietly(name);
    }
  },
);

ipcTest("message queues of another user are listed as other-user", () => {
  const name = testName("life-mq-other");
  const mounted = Deno.readTextFileSync("/proc/self/mounts").includes(" /dev/mqueue mqueue ");
  const sysv = MessageQueue.create();
  try {
    // Given to uid 65534 (msgctl IPC_SET): the creator (us) may still remove it.
    const stat = new Uint8Array(C.SIZEOF_MSQID_DS);
    assert.equal(libc().symbols.msgctl(sysv.id, C.IPC_STAT, stat), 0);
    new DataView(stat.buffer).setUint32(C.MSQID_OFFSET_UID, 65534, true);
    assert.equal(libc().symbols.msgctl(sysv.id, C.IPC_SET, stat), 0);
    if (mounted) {
      PosixMessageQueue.create({ name }).close();
      Deno.chownSync(`/dev/mqueue${name}`, 65534, 65534);
    }
    const objects = listObjects({ scanMappings: false });
    const listed = objects.find((o) => o.name === `sysv:${sysv.id}`);
    assert.equal(listed?.state, "other-user");
    assert.equal(listed?.uid, 65534);
    if (mounted) {
      const queue = objects.find((o) => o.name === name);
      assert.equal(queue?.state, "other-user");
      assert.equal(queue?.uid, 65534);
      assert.deepEqual(queue?.details, {}, "its status was not read");
    }
  } finally {
    sysv.remove();
    sysv.close();
    if (mounted) PosixMessageQueue.unlink(name);
  }
});

// Finishing another cleaner's removal (above) must not remove a new object that took
// the name meanwhile: a cleaner holding the old, sealed object checks that the name
// still names it before removing the name.
ipcTest(
  "a cleaner finishing a sealed removal leaves a new object that took the name meanwhile",
  async () => {
    const name = testName("life-step-reused");
    ringOfTheDead(name);
    try {
      await using cleaner = stoppedAt("lifecycle.clean.marking", ["clean", name]);
      await untilStopped(cleaner.process.pid); // it has the old ring mapped
      {
        using shm = SharedMemory.open({ name });
        const view = new DataView(shm.buffer);
        view.setBigInt64(view.getInt32(24, true) + 32, -1n, true); // sealed (REMOVED)
      }
      SharedMemory.unlink(name);
      using _ring = MessageRing.create({ name, capacity: 4096 });
      cleaner.process.kill("SIGCONT");
      const result = JSON.parse(await cleaner.line());
      assert.deepEqual(result.removed, []);
      assert.equal(find(name)?.details.capacity, 4096, "the new ring keeps its name");
    } finally {
      unlinkQuietly(name);
    }
  },
);

ipcTest(
  "an object another user keeps unreadable is listed with its owner, mode and size",
  async () => {
    const name = testName("life-unreadable");
    Deno.writeFileSync(`/dev/shm${name}`, new Uint8Array(3000), { mode: 0o600 });
    try {
      Deno.chownSync(`/dev/shm${name}`, 1234, 1234);
      // Listed by uid 65534, which cannot open it.
      const child = await runChild("lifecycle_child.ts", ["list-as-nobody", name]);
      assert.equal(child.code, 0, child.stderr);
      const object = JSON.parse(child.stdout) as IpcObject;
      assert.equal(object.state, "other-user");
      assert.deepEqual([object.uid, object.mode, object.size], [1234, 0o600, 3000]);
    } finally {
      unlinkQuietly(name);
    }
  },
);

// A segment no one has open (its writer died, its reader has not reached it) holds a live
// mailbox's messages: however the mailbox's header reads (torn by a send and a receive
// during the read, or corrupted), the segment is the mailbox's and is never removed alone.
ipcTest(
  "a dead writer's segment of a live mailbox whose header reads as corrupted is not removed",
  () => {
    using box = Mailbox.create({ name: testName("life-torn"), capacity: 4 });
    const token = (() => {
      using shm = SharedMemory.open({ name: box.name });
      return new DataView(shm.buffer).getUint32(7 * 4, true);
    })();
    const segment = `${box.name}.${token.toString(16).padStart(8, "0")}.7`;
    try {
      ringOfTheDead(segment);
      {
        using shm = SharedMemory.open({ name: box.name });
        const view = new DataView(shm.buffer);
        const [sent, taken] = [view.getUint32(19 * 4, true), view.getUint32(35 * 4, true)];
        view.setUint32(35 * 4, sent + 1, true); // taken past sent: depth -1
        try {
          assert.equal(find(box.name)?.state, "corrupted");
          assert.equal(find(segment)?.partOf, box.name);
          assert.deepEqual(cleanupDead({ names: [segment] }).removed, []);
          assert.notEqual(find(segment), undefined, "the segment is still there");
        } finally {
          view.setUint32(35 * 4, taken, true);
        }
      }
    } finally {
      unlinkQuietly(segment);
      box.delete();
    }
  },
);

// A ring that only looks like a segment of a dead mailbox (its name and token) and that a
// live process has open is that process's: removing the mailbox leaves it.
ipcTest(
  "removing a dead mailbox leaves a ring named like its segment that a live process holds",
  () => {
    const name = testName("life-lookalike");
    Mailbox.create({ name, capacity: 4 }).close();
    let token = 0;
    {
      using shm = SharedMemory.open({ name });
      const view = new DataView(shm.buffer);
      token = view.getUint32(7 * 4, true);
      // Its creator: pid 1 with another start time (a reused pid): dead.
      const life = view.getInt32(8 * 4, true);
      view.setBigInt64(life + 16, (BigInt(currentStartTime() + 999) << 32n) | 1n, true);
    }
    const lookalike = `${name}.${token.toString(16).padStart(8, "0")}.99`;
    try {
      using ring = MessageRing.create({ name: lookalike, capacity: 1024 });
      assert.equal(find(lookalike)?.partOf, name);
      const result = cleanupDead({ names: [name], scanMappings: false });
      assert.ok(result.removed.some((e) => e.name === name), "the dead mailbox is removed");
      assert.ok(!result.removed.some((e) => e.name === lookalike));
      assert.match(result.kept.find((e) => e.name === lookalike)?.reason ?? "", /live process/);
      assert.equal(find(lookalike)?.details.capacity, 1024, "the held ring keeps its name");
      assert.equal(ring.trySend(new Uint8Array(1)), true);
    } finally {
      unlinkQuietly(lookalike);
      for (const o of listObjects({ scanMappings: false })) {
        if (o.name.startsWith(name)) unlinkQuietly(o.name);
      }
    }
  },
);

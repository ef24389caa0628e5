// FileLog across real processes: appends from several writers, writers killed inside an
// append, corrupted bytes, cursors, rotation, waiting, and the bad-input catalog.
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ClosedError,
  CorruptedError,
  ErrnoError,
  FileLock,
  FileLog,
  NotFoundError,
  PermissionDeniedError,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest, propertyRuns } from "./_helpers.ts";
import { identify, payload } from "./children/file_payload.ts";

function tempLog(): { path: string; cleanup: () => void } {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-log-" });
  return {
    path: `${directory}/log`,
    cleanup: () => Deno.removeSync(directory, { recursive: true }),
  };
}

function segmentFiles(path: string): string[] {
  return Array.from(Deno.readDirSync(path), (entry) => entry.name)
    .filter((name) => name.endsWith(".seg")).sort();
}

ipcTest(
  "file log: records from N writer processes arrive exactly once, whole, in each writer's order, numbered without gaps",
  async () => {
    const workload = fc.record({
      counts: fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 2, maxLength: 3 }),
      size: fc.oneof(fc.integer({ min: 8, max: 300 }), fc.constant(4096)),
      notify: fc.constantFrom("inotify" as const, "poll" as const),
      // Small segments make writers rotate while the follower crosses segments.
      segmentSize: fc.constantFrom(64 * 2 ** 20, 600, 5000),
    });
    await fc.assert(
      fc.asyncProperty(workload, async ({ counts, size, notify, segmentSize }) => {
        const { path, cleanup } = tempLog();
        try {
          using log = FileLog.open(path);
          using follower = log.reader({ from: "start", notify, pollInterval: 2 });
          const children = counts.map((count, writer) =>
            new Child("file_child.ts", [
              "append",
              path,
              String(writer),
              String(count),
              String(size),
              String(segmentSize),
            ])
          );
          const total = counts.reduce((sum, count) => sum + count, 0);
          const seen = counts.map(() => 0);
          try {
            for (let sequence = 0; sequence < total; sequence++) {
              const record = await follower.read({ timeout: 30_000 });
              assert.equal(record.sequence, sequence);
              const { writer, index } = identify(record.data);
              assert.equal(index, seen[writer], `writer ${writer} out of order`);
              seen[writer]++;
            }
            for (const child of children) assert.equal((await child.status()).code, 0);
          } finally {
            for (const child of children) await child[Symbol.asyncDispose]();
          }
          assert.deepEqual(seen, counts);
          assert.equal(follower.tryRead(), undefined);
          // A second reader sees the same log: the reader's view equals the model.
          using again = log.reader({ from: "start" });
          for (let sequence = 0; sequence < total; sequence++) {
            assert.equal(again.tryRead()?.sequence, sequence);
          }
        } finally {
          cleanup();
        }
      }),
      { numRuns: propertyRuns(3) },
    );
  },
);

ipcTest(
  "file log: a writer SIGKILLed inside an append loses only that record; readers wait at the partial record and the next append repairs the tail",
  async () => {
    const workload = fc.record({
      killAt: fc.integer({ min: 0, max: 4 }),
      fraction: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
      size: fc.oneof(fc.integer({ min: 8, max: 200 }), fc.integer({ min: 4000, max: 9000 })),
    });
    await fc.assert(
      fc.asyncProperty(workload, async ({ killAt, fraction, size }) => {
        const { path, cleanup } = tempLog();
        try {
          using log = FileLog.open(path);
          using follower = log.reader();
          const child = new Child(
            "file_child.ts",
            ["append", path, "1", String(killAt + 3), String(size)],
            ["-A"],
            { CUT: `${killAt}:${fraction}` },
          );
          const status = await child.status();
          assert.equal(status.signal, "SIGKILL", "the child should have killed itself mid-append");
          for (let i = 0; i < killAt; i++) {
            const record = await follower.read({ timeout: 5000 });
            assert.deepEqual(identify(record.data), { writer: 1, index: i });
          }
          const [segment] = segmentFiles(path);
          const committed = killAt * (24 + Math.max(8, size));
          assert.ok(Deno.statSync(`${path}/${segment}`).size > committed, "no partial record");
          // The partial record is never returned.
          assert.equal(follower.tryRead(), undefined);
          await assert.rejects(follower.read({ timeout: 30 }), TimedOutError);
          const repaired = await log.append(payload(2, 0, 16));
          assert.equal(repaired, killAt);
          assert.deepEqual(identify((await follower.read({ timeout: 5000 })).data), {
            writer: 2,
            index: 0,
          });
          assert.equal(Deno.statSync(`${path}/${segment}`).size, committed + 24 + 16);
        } finally {
          cleanup();
        }
      }),
      { numRuns: propertyRuns(4) },
    );
  },
);

ipcTest(
  "file log: writers SIGKILLed at random moments lose nothing committed: each writer's records are a gap-free prefix, and the log stays appendable",
  async () => {
    const workload = fc.record({
      readsBeforeKill: fc.integer({ min: 1, max: 60 }),
      size: fc.integer({ min: 8, max: 3000 }),
    });
    await fc.assert(
      fc.asyncProperty(workload, async ({ readsBeforeKill, size }) => {
        const { path, cleanup } = tempLog();
        try {
          using log = FileLog.open(path);
          using follower = log.reader();
          const victim = new Child("file_child.ts", ["append", path, "0", "100000", String(size)]);
          const survivor = new Child("file_child.ts", ["append", path, "1", "80", String(size)]);
          const seen = [0, 0, 0];
          const take = async () => {
            const { writer, index } = identify((await follower.read({ timeout: 30_000 })).data);
            assert.equal(index, seen[writer], `writer ${writer} has a gap or a duplicate`);
            seen[writer]++;
            return writer;
          };
          try {
            while (seen[0] < readsBeforeKill) await take();
            victim.process.kill("SIGKILL");
            assert.equal((await victim.status()).signal, "SIGKILL");
            assert.equal((await survivor.status()).code, 0);
          } finally {
            await victim[Symbol.asyncDispose]();
            await survivor[Symbol.asyncDispose]();
          }
          await log.append(payload(2, 0, 8));
          while (seen[2] === 0) await take();
          assert.equal(seen[1], 80);
          assert.equal(follower.tryRead(), undefined);
        } finally {
          cleanup();
        }
      }),
      { numRuns: propertyRuns(3) },
    );
  },
);

ipcTest(
  "file log: random byte corruption is detected, never returned as data, and appends refuse to run over it",
  async () => {
    const workload = fc.record({
      sizes: fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 12 }),
      flips: fc.array(
        fc.record({
          at: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
          xor: fc.integer({ min: 1, max: 255 }),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    });
    const { path, cleanup } = tempLog();
    try {
      await fc.assert(
        fc.asyncProperty(workload, async ({ sizes, flips }) => {
          FileLog.open(path).close();
          FileLog.remove(path);
          using log = FileLog.open(path);
          const model = sizes.map((size) => crypto.getRandomValues(new Uint8Array(size)));
          await log.appendBatch(model);
          const ends: number[] = [];
          let end = 0;
          for (const record of model) ends.push(end += 24 + record.length);
          const file = `${path}/${segmentFiles(path)[0]}`;
          const bytes = Deno.readFileSync(file);
          const positions = flips.map(({ at }) => Math.floor(at * bytes.length));
          for (const [i, { xor }] of flips.entries()) bytes[positions[i]] ^= xor;
          const net = new Map<number, number>();
          for (const [i, { xor }] of flips.entries()) {
            net.set(positions[i], (net.get(positions[i]) ?? 0) ^ xor);
          }
          const changed = [...net].filter(([, xor]) => xor !== 0).map(([at]) => at);
          if (changed.length === 0) return; // the flips cancelled out
          Deno.writeFileSync(file, bytes);
          const firstBad = ends.findIndex((e) => e > Math.min(...changed));
          using reader = log.reader({ from: "start" });
          for (let sequence = 0; sequence < firstBad; sequence++) {
            assert.deepEqual(reader.tryRead()?.data, model[sequence]);
          }
          assert.throws(() => reader.tryRead(), CorruptedError);
          using other = FileLog.open(path);
          await assert.rejects(other.append(new Uint8Array(4)), CorruptedError);
          assert.equal(Deno.statSync(file).size, bytes.length);
        }),
        { numRuns: propertyRuns(40) },
      );
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log: a reader's view equals a model of the log across batches, cursor restarts, new handles and rotation",
  async () => {
    type Op =
      | { kind: "append"; sizes: number[] }
      | { kind: "read"; count: number }
      | { kind: "restart" }
      | { kind: "reopen" }
      | { kind: "scan" };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant("append" as const),
        sizes: fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant("read" as const), count: fc.integer({ min: 1, max: 6 }) }),
      fc.record({ kind: fc.constant("restart" as const) }),
      fc.record({ kind: fc.constant("reopen" as const) }),
      fc.record({ kind: fc.constant("scan" as const) }),
    );
    const { path, cleanup } = tempLog();
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 40, max: 600 }),
          fc.array(op, { minLength: 1, maxLength: 30 }),
          async (segmentSize, ops) => {
            const model: Uint8Array[] = [];
            let log = FileLog.open(path, { segmentSize });
            let reader = log.reader({ cursor: "model" });
            let position = 0;
            try {
              for (const step of ops) {
                if (step.kind === "append") {
                  const records = step.sizes.map((size) =>
                    crypto.getRandomValues(new Uint8Array(size))
                  );
                  assert.equal(await log.appendBatch(records), model.length);
                  model.push(...records);
                } else if (step.kind === "read") {
                  for (let i = 0; i < step.count; i++) {
                    const record = reader.tryRead();
                    if (position === model.length) {
                      assert.equal(record, undefined);
                      break;
                    }
                    assert.equal(record?.sequence, position);
                    assert.deepEqual(record.data, model[position]);
                    position++;
                  }
                } else if (step.kind === "restart") {
                  reader.close();
                  reader = log.reader({ cursor: "model" });
                  assert.equal(reader.position, position);
                } else if (step.kind === "reopen") {
                  log.close();
                  log = FileLog.open(path, { segmentSize });
                } else {
                  using everything = log.reader({ from: "start" });
                  const oldest = everything.position;
                  assert.ok(oldest <= position, "a segment the cursor needs was removed");
                  for (let sequence = oldest; sequence < model.length; sequence++) {
                    assert.deepEqual(everything.tryRead()?.data, model[sequence]);
                  }
                  assert.equal(everything.tryRead(), undefined);
                }
              }
            } finally {
              reader.close();
              log.close();
              FileLog.remove(path);
            }
          },
        ),
        { numRuns: propertyRuns(60) },
      );
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log reader: a named cursor persists, and a restarted reader resumes there",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using log = FileLog.open(path);
      await log.appendBatch([1, 2, 3, 4].map((n) => new Uint8Array([n])));
      {
        using reader = log.reader({ cursor: "consumer" });
        assert.equal(reader.tryRead()?.data[0], 1);
        assert.equal(reader.tryRead()?.data[0], 2);
        assert.throws(
          () => log.reader({ cursor: "consumer" }),
          (e) => (e as ErrnoError).code === "EBUSY",
        );
      }
      using resumed = log.reader({ cursor: "consumer", from: 0 });
      assert.equal(resumed.position, 2);
      assert.equal(resumed.tryRead()?.data[0], 3);
      assert.deepEqual(log.cursors(), ["consumer"]);
      assert.throws(() => log.removeCursor("consumer"), (e) => (e as ErrnoError).code === "EBUSY");
      resumed.close();
      log.removeCursor("consumer");
      assert.deepEqual(log.cursors(), []);
    } finally {
      cleanup();
    }
  },
);

ipcTest("file log: a corrupted cursor file is a CorruptedError", () => {
  const { path, cleanup } = tempLog();
  try {
    using log = FileLog.open(path);
    log.reader({ cursor: "c" }).close();
    const file = `${path}/cursors/c`;
    const bytes = Deno.readFileSync(file);
    bytes[9] ^= 1;
    Deno.writeFileSync(file, bytes);
    assert.throws(() => log.reader({ cursor: "c" }), CorruptedError);
    Deno.writeFileSync(file, new Uint8Array(5));
    assert.throws(() => log.reader({ cursor: "c" }), CorruptedError);
  } finally {
    cleanup();
  }
});

ipcTest(
  "file log: rotation removes old segments once every named cursor is past them; maxSegments caps the log",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using log = FileLog.open(path, { segmentSize: 100, maxSegments: 3 });
      using slow = log.reader({ cursor: "slow" });
      using fast = log.reader({ cursor: "fast" });
      const record = new Uint8Array(40); // 64 bytes with the header: one per segment
      for (let i = 0; i < 3; i++) await log.append(record);
      assert.equal(segmentFiles(path).length, 3);
      await assert.rejects(log.append(record), (e) => (e as ErrnoError).code === "ENOSPC");
      for (let i = 0; i < 3; i++) fast.tryRead();
      await assert.rejects(log.append(record), (e) => (e as ErrnoError).code === "ENOSPC");
      slow.tryRead();
      slow.tryRead();
      assert.equal(await log.append(record), 3);
      assert.deepEqual(segmentFiles(path), [
        "00000000000000000002.seg",
        "00000000000000000003.seg",
      ]);
      assert.throws(() => log.reader({ from: 0 }), NotFoundError);
      assert.equal(slow.tryRead()?.sequence, 2);
      assert.equal(slow.tryRead()?.sequence, 3);
      assert.equal(fast.tryRead()?.sequence, 3);
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log reader: read waits by inotify or polling; timeout, abort and close end it",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using log = FileLog.open(path);
      for (const notify of ["inotify", "poll"] as const) {
        using reader = log.reader({ from: "end", notify, pollInterval: 5 });
        assert.equal(reader.notification, notify);
        const pending = reader.read({ timeout: 5000 });
        await new Promise((resolve) => setTimeout(resolve, 20));
        const sequence = await log.append(new Uint8Array([7]));
        assert.equal((await pending).sequence, sequence);
        await assert.rejects(reader.read({ timeout: 10 }), TimedOutError);
        const controller = new AbortController();
        const aborted = reader.read({ signal: controller.signal });
        controller.abort(new Error("stop"));
        await assert.rejects(aborted, /stop/);
        const closing = reader.read();
        reader.close();
        await assert.rejects(closing, ClosedError);
        assert.throws(() => reader.tryRead(), ClosedError);
        await delay(150); // the last wait slice finishes on the thread pool, then fds close
      }
    } finally {
      cleanup();
    }
  },
);

ipcTest("file log: sync policies write the same records", async () => {
  const { path, cleanup } = tempLog();
  try {
    for (const sync of ["none", "record", "batch"] as const) {
      using log = FileLog.open(path, { sync, segmentSize: 64 });
      await log.appendBatch([new Uint8Array(30), new Uint8Array(30)]);
      await log.append(new Uint8Array(1));
    }
    using log = FileLog.open(path);
    using reader = log.reader();
    const sequences = [];
    for (let record = reader.tryRead(); record; record = reader.tryRead()) {
      sequences.push(record.sequence);
    }
    assert.deepEqual(sequences, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  } finally {
    cleanup();
  }
});

ipcTest("file log: bad paths, options, records and positions are typed errors", async () => {
  const { path, cleanup } = tempLog();
  try {
    Deno.mkdirSync(path);
    Deno.writeFileSync(`${path}/file`, new Uint8Array(1));
    assert.throws(() => FileLog.open(`${path}/file`), (e) => (e as ErrnoError).code === "ENOTDIR");
    assert.throws(() => FileLog.open(`${path}/missing`, { create: false }), NotFoundError);
    assert.throws(() => FileLog.open(`${path}/no/such/dir`), NotFoundError);
    new Deno.Command("mkfifo", { args: [`${path}/fifo`] }).outputSync();
    assert.throws(() => FileLog.open(`${path}/fifo`), (e) => (e as ErrnoError).code === "ENOTDIR");
    Deno.symlinkSync(path, `${path}/link`);
    // O_NOFOLLOW | O_DIRECTORY on a symbolic link: ENOTDIR (ELOOP without O_DIRECTORY).
    assert.throws(
      () => FileLog.open(`${path}/link`, { create: false }),
      (e) => ["ENOTDIR", "ELOOP"].includes((e as ErrnoError).code),
    );
    Deno.mkdirSync(`${path}/open`, { mode: 0o777 });
    Deno.chmodSync(`${path}/open`, 0o777);
    assert.throws(() => FileLog.open(`${path}/open`), PermissionDeniedError);
    assert.throws(() => FileLog.open(""), TypeError);
    assert.throws(() => FileLog.open("a\0b"), TypeError);
    assert.throws(() => FileLog.open(`${path}/x`, { sync: "always" as "none" }), TypeError);
    assert.throws(() => FileLog.open(`${path}/x`, { maxRecordSize: 0 }), RangeError);
    assert.throws(() => FileLog.open(`${path}/x`, { maxSegments: 1 }), RangeError);
    using log = FileLog.open(`${path}/ok`, { maxRecordSize: 16 });
    await assert.rejects(log.append(new Uint8Array(17)), RangeError);
    await assert.rejects(log.append("text" as unknown as Uint8Array), TypeError);
    await assert.rejects(log.appendBatch([]), TypeError);
    assert.throws(() => log.reader({ from: -1 }), RangeError);
    assert.throws(() => log.reader({ from: 5 }), RangeError);
    assert.throws(() => log.reader({ cursor: "../x" }), TypeError);
    assert.throws(() => log.reader({ cursor: ".." }), TypeError);
    assert.throws(() => log.reader({ notify: "fast" as "poll" }), TypeError);
    // A record longer than this reader's bound is corruption, never an allocation.
    using big = FileLog.open(`${path}/ok`);
    await big.append(new Uint8Array(100));
    using reader = log.reader();
    assert.throws(() => reader.tryRead(), CorruptedError);
    log.close();
    await assert.rejects(log.append(new Uint8Array(1)), ClosedError);
  } finally {
    cleanup();
  }
});

ipcTest("file log: appends wait for the lock file's byte 0; tryAppend does not wait", async () => {
  const { path, cleanup } = tempLog();
  try {
    using log = FileLog.open(path);
    using lock = FileLock.open(`${path}/lock`);
    const held = lock.tryLock({ start: 0, length: 1 });
    assert.ok(held);
    assert.equal(await log.tryAppend(new Uint8Array(1)), undefined);
    await assert.rejects(log.append(new Uint8Array(1), { timeout: 20 }), TimedOutError);
    const waiting = log.append(new Uint8Array(1), { timeout: 5000 });
    await delay(10);
    held.release();
    assert.equal(await waiting, 0);
    assert.equal(await log.tryAppend(new Uint8Array(1)), 1);
  } finally {
    cleanup();
  }
});

ipcTest(
  "file log: a FIFO planted under the next segment's name is refused, never waited on in open(2)",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using log = FileLog.open(path);
      using reader = log.reader({ from: "start" });
      await log.append(new Uint8Array([1]));
      assert.deepEqual((await reader.read({ timeout: 1000 })).data, new Uint8Array([1]));
      const fifo = `${path}/${"1".padStart(20, "0")}.seg`;
      const made = await new Deno.Command("mkfifo", { args: ["-m", "600", fifo] }).output();
      assert.equal(made.code, 0);
      // Without O_NONBLOCK this read would block the thread in open(2) for good.
      await assert.rejects(reader.read({ timeout: 500 }), ErrnoError);
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log: a segment another user could write is refused every time, not only the first",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using log = FileLog.open(path);
      await log.append(new Uint8Array([1]));
      const segment = `${path}/${segmentFiles(path)[0]}`;
      Deno.chmodSync(segment, 0o666);
      using other = FileLog.open(path);
      await assert.rejects(other.append(new Uint8Array([2])), PermissionDeniedError);
      await assert.rejects(other.append(new Uint8Array([3])), PermissionDeniedError);
      assert.throws(() => other.reader({ from: "start" }), PermissionDeniedError);
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log: an append that fails partway (EFBIG) keeps the whole records readers may have read",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      const child = new URL("./children/file_efbig_child.ts", import.meta.url).pathname;
      const output = await new Deno.Command("bash", {
        args: [
          "-c",
          `trap '' XFSZ; ulimit -f 8; exec "$0" run -A "$1" "$2"`,
          Deno.execPath(),
          child,
          path,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      assert.equal(output.code, 0);
      const { seen, held } = JSON.parse(new TextDecoder().decode(output.stdout));
      // Every record the reader returned is the log's record of that number.
      assert.deepEqual(seen, held.slice(0, seen.length));
      assert.ok(held.length >= 2 && held.at(-1).endsWith(":7:100"), JSON.stringify(held));
    } finally {
      cleanup();
    }
  },
);

ipcTest(
  "file log: a handle whose lock file was removed stops appending, so it never writes over a newer handle's records",
  async () => {
    const { path, cleanup } = tempLog();
    try {
      using old = FileLog.open(path);
      await old.append(new Uint8Array([1]));
      Deno.removeSync(`${path}/lock`); // e.g. someone clearing a "stale lock"
      using newer = FileLog.open(path); // creates and locks a new lock file
      await newer.append(new Uint8Array([2]));
      await assert.rejects(
        old.append(new Uint8Array([3])),
        (error: unknown) => error instanceof ErrnoError && error.code === "ESTALE",
      );
      await newer.append(new Uint8Array([4]));
      using reader = newer.reader({ from: "start" });
      const data = [];
      for (let record; (record = reader.tryRead());) data.push(record.data[0]);
      assert.deepEqual(data, [1, 2, 4]);
    } finally {
      cleanup();
    }
  },
);

ipcTest("file log: a reader that fails to start leaves no cursor behind", async () => {
  const { path, cleanup } = tempLog();
  try {
    using log = FileLog.open(path);
    await log.append(new Uint8Array([1]));
    assert.throws(() => log.reader({ cursor: "typo", from: 5 }));
    assert.deepEqual(log.cursors(), []);
  } finally {
    cleanup();
  }
});

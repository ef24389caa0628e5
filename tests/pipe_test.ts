import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BrokenPipeError,
  ClosedError,
  createPipe,
  PIPE_BUF,
  spawnWithPipePair,
  spawnWithPipes,
  TimedOutError,
} from "../mod.ts";
import { C } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { delay, ipcTest, propertyRuns } from "./_helpers.ts";

const CHILD = new URL("./children/pipe_child.ts", import.meta.url).pathname;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

ipcTest(
  "createPipe(): bytes in order, undefined when empty, null after the writer closes",
  async () => {
    const { reader, writer } = createPipe();
    using _r = reader;
    assert.equal(reader.tryRead(new Uint8Array(4)), undefined);
    assert.equal(writer.tryWrite(encoder.encode("abc")), 3);
    await writer.write(encoder.encode("def"));
    const buffer = new Uint8Array(16);
    assert.equal(reader.tryRead(buffer), 6);
    assert.equal(decoder.decode(buffer.subarray(0, 6)), "abcdef");
    writer.close();
    assert.equal(reader.tryRead(buffer), null);
    assert.equal(await reader.read(buffer), null);
  },
);

ipcTest(
  "PipeReader.read() waiting when the last writer closes resolves to null (EOF)",
  async () => {
    const { reader, writer } = createPipe();
    using _r = reader;
    const waiting = reader.read(new Uint8Array(8), { timeout: 5000 });
    await delay(30);
    writer.close();
    assert.equal(await waiting, null);
  },
);

ipcTest(
  "PipeWriter after every reader closed: BrokenPipeError (EPIPE), the process lives",
  async () => {
    const { reader, writer } = createPipe();
    using _w = writer;
    reader.close();
    assert.throws(
      () => writer.tryWrite(new Uint8Array([1])),
      (e: unknown) =>
        e instanceof BrokenPipeError && e.code === "EPIPE" && /every reader/.test(e.message),
    );
    await assert.rejects(writer.write(new Uint8Array(100_000)), BrokenPipeError);
  },
);

ipcTest(
  "PipeWriter.write() waits while the pipe is full and finishes once it is read",
  async () => {
    const { reader, writer } = createPipe();
    using _r = reader;
    using _w = writer;
    const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
    let written = false;
    const writing = writer.write(big, { timeout: 10_000 }).then(() => written = true);
    await delay(20);
    assert.equal(written, false, "a 1 MiB write cannot fit a 64 KiB pipe");
    const received = new Uint8Array(big.length);
    for (let offset = 0; offset < big.length;) {
      offset += (await reader.read(received.subarray(offset), { timeout: 10_000 }))!;
    }
    await writing;
    assert.deepEqual(received, big);
    assert.equal(writer.tryWrite(new Uint8Array(PIPE_BUF + 1)), PIPE_BUF + 1);
  },
);

ipcTest("PipeReader.read(): timeout, abort, and close while waiting", async () => {
  const { reader, writer } = createPipe();
  using _w = writer;
  const buffer = new Uint8Array(8);
  await assert.rejects(reader.read(buffer, { timeout: 20 }), TimedOutError);
  const controller = new AbortController();
  const aborted = reader.read(buffer, { signal: controller.signal });
  controller.abort(new Error("enough"));
  await assert.rejects(aborted, /enough/);
  const closing = reader.read(buffer);
  await delay(10);
  reader.close();
  await assert.rejects(closing, ClosedError);
  await delay(150); // the last poll slice finishes on the thread pool
});

ipcTest(
  "pipe ends after close(): ClosedError; close() twice is fine; bad arguments are TypeErrors",
  async () => {
    const { reader, writer } = createPipe();
    reader.close();
    reader.close();
    writer.close();
    assert.throws(() => reader.tryRead(new Uint8Array(1)), ClosedError);
    assert.throws(() => writer.tryWrite(new Uint8Array(1)), ClosedError);
    await assert.rejects(reader.read(new Uint8Array(1)), ClosedError);
    await assert.rejects(writer.write(new Uint8Array(1)), ClosedError);
    const pipe = createPipe();
    using _r = pipe.reader;
    using _w = pipe.writer;
    // deno-lint-ignore no-explicit-any
    assert.throws(() => pipe.writer.tryWrite("text" as any), TypeError);
    // deno-lint-ignore no-explicit-any
    await assert.rejects(pipe.reader.read([] as any), TypeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => spawnWithPipes("true", { ends: { x: {} as any } }), TypeError);
    assert.throws(() => spawnWithPipes("true", { ends: { x: reader } }), ClosedError);
  },
);

ipcTest("spawnWithPipes(): the child inherits exactly the ends it was given", async () => {
  const given = createPipe();
  const other = createPipe(); // must not reach the child
  using _r = given.reader;
  using _or = other.reader;
  using _ow = other.writer;
  const target = (fd: number) => Deno.readLinkSync(`/proc/self/fd/${fd}`);
  const givenTarget = target(given.writer.fd);
  const otherTargets = [target(other.reader.fd), target(other.writer.fd)];
  const child = spawnWithPipes(Deno.execPath(), {
    args: ["run", "-A", CHILD, "fds"],
    ends: { output: given.writer },
    stdout: "piped",
  });
  assert.equal(given.writer.closed, true, "the parent's copy was not closed");
  const lines = decoder.decode((await child.output()).stdout).trim().split("\n");
  const targets = lines.filter((line) => line.includes("pipe:")).map((line) =>
    line.split(" -> ")[1]
  );
  assert.ok(targets.includes(givenTarget), "the given end is missing in the child");
  for (const leaked of otherTargets) assert.ok(!targets.includes(leaked), "another pipe leaked");
});

ipcTest("spawnWithPipePair(): a child answers each line in upper case, then EOF", async () => {
  const { child, reader, writer } = spawnWithPipePair(Deno.execPath(), {
    args: ["run", "-A", CHILD, "upper"],
  });
  using _r = reader;
  await writer.write(encoder.encode("hello pipe\n"));
  writer.close();
  const chunks: string[] = [];
  for await (const chunk of reader.readable()) chunks.push(decoder.decode(chunk));
  assert.equal(chunks.join(""), "HELLO PIPE\n");
  assert.equal((await child.status).code, 0);
});

ipcTest("pipes between processes: bytes in = bytes out across random chunkings", async () => {
  const chunking = fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 6 });
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 0, maxLength: 300_000 }),
      chunking,
      chunking,
      async (data, writeSizes, readSizes) => {
        const { reader, writer } = createPipe();
        using _w = writer;
        const child = spawnWithPipes(Deno.execPath(), {
          args: ["run", "-A", CHILD, "digest", readSizes.join(",")],
          ends: { input: reader },
          stdout: "piped",
        });
        for (let offset = 0, i = 0; offset < data.length; i++) {
          const size = writeSizes[i % writeSizes.length];
          await writer.write(data.subarray(offset, offset + size), { timeout: 30_000 });
          offset += size;
        }
        writer.close();
        const output = await child.output();
        assert.equal(output.code, 0);
        const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
        const expected = `${data.length} ${
          Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")
        }`;
        assert.equal(decoder.decode(output.stdout).trim(), expected);
      },
    ),
    { numRuns: propertyRuns(6) },
  );
});

ipcTest("several writer processes: writes of at most PIPE_BUF bytes never interleave", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 4 }),
      fc.constantFrom(1, 512, 4000, PIPE_BUF),
      fc.integer({ min: 20, max: 120 }),
      async (writers, size, count) => {
        const { reader, writer } = createPipe();
        using _r = reader;
        const children = Array.from({ length: writers }, (_, id) => {
          const end = id === writers - 1 ? writer : writer.duplicate();
          return spawnWithPipes(Deno.execPath(), {
            args: ["run", "-A", CHILD, "records", String(id), String(count), String(size)],
            ends: { output: end },
          });
        });
        const received: number[] = [];
        const buffer = new Uint8Array(1 << 16);
        let pending = new Uint8Array(0);
        for (let n = await reader.read(buffer, { timeout: 30_000 }); n !== null;) {
          const joined = new Uint8Array(pending.length + n);
          joined.set(pending);
          joined.set(buffer.subarray(0, n), pending.length);
          let offset = 0;
          for (; offset + size <= joined.length; offset += size) {
            const record = joined.subarray(offset, offset + size);
            const id = record[0];
            const fill = record[size - 1];
            assert.ok(record.subarray(1).every((byte) => byte === fill), "records interleaved");
            received.push(id);
          }
          pending = joined.slice(offset);
          n = await reader.read(buffer, { timeout: 30_000 });
        }
        for (const child of children) assert.equal((await child.status).code, 0);
        assert.equal(pending.length, 0);
        assert.equal(received.length, writers * count);
      },
    ),
    { numRuns: propertyRuns(4) },
  );
});

ipcTest("spawnWithPipes(): a duplicate the parent keeps stays non-blocking", async () => {
  const { reader, writer } = createPipe();
  const kept = reader.duplicate();
  try {
    const child = spawnWithPipes("true", { ends: { input: reader } });
    await child.status;
    const { symbols } = libc();
    const flags = symbols.fcntl(kept.fd, C.F_GETFL, 0);
    assert.ok(flags >= 0 && (flags & C.O_NONBLOCK) !== 0, "the kept duplicate became blocking");
    assert.equal(kept.tryRead(new Uint8Array(8)), undefined, "nothing to read yet");
  } finally {
    kept.close();
    writer.close();
  }
});

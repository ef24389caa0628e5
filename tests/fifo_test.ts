import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  Fifo,
  NotAFifoError,
  NotFoundError,
  PermissionDeniedError,
  TimedOutError,
} from "../mod.ts";
import { delay, ipcTest } from "./_helpers.ts";

async function withDirectory(fn: (directory: string) => Promise<void> | void): Promise<void> {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-fifo-" });
  try {
    await fn(directory);
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
}

ipcTest(
  "Fifo.create() makes a FIFO with mode 0600, exclusively",
  () =>
    withDirectory((directory) => {
      const path = `${directory}/requests`;
      Fifo.create(path);
      const stat = Deno.statSync(path);
      assert.equal(stat.isFifo, true);
      assert.equal(stat.mode! & 0o777, 0o600);
      assert.throws(() => Fifo.create(path), AlreadyExistsError);
      assert.throws(() => Fifo.create(`${directory}/missing/fifo`), NotFoundError);
      Fifo.unlink(path);
      assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
      assert.throws(() => Fifo.unlink(path), NotFoundError);
    }),
);

ipcTest(
  "Fifo.openReader() and openWriter() wait for each other, then carry bytes and EOF",
  () =>
    withDirectory(async (directory) => {
      const path = `${directory}/fifo`;
      Fifo.create(path);
      const opening = Fifo.openReader(path, { timeout: 5000 });
      await delay(30); // the reader is waiting for a writer
      using writer = await Fifo.openWriter(path, { timeout: 5000 });
      using reader = await opening;
      await writer.write(new TextEncoder().encode("request"));
      writer.close();
      const buffer = new Uint8Array(32);
      const n = await reader.read(buffer, { timeout: 5000 });
      assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "request");
      assert.equal(await reader.read(buffer, { timeout: 5000 }), null);
    }),
);

ipcTest(
  "Fifo opens with no peer: timeout and abort cancel the wait and leave nothing open",
  () =>
    withDirectory(async (directory) => {
      const path = `${directory}/fifo`;
      Fifo.create(path);
      await assert.rejects(
        Fifo.openReader(path, { timeout: 30 }),
        (e: unknown) => e instanceof TimedOutError && e.objectName === path,
      );
      await assert.rejects(Fifo.openWriter(path, { timeout: 30 }), TimedOutError);
      const controller = new AbortController();
      const opening = Fifo.openWriter(path, { signal: controller.signal });
      await delay(20);
      controller.abort(new Error("no reader came"));
      await assert.rejects(opening, /no reader came/);
      await assert.rejects(Fifo.openReader(path, { signal: AbortSignal.abort() }), {
        name: "AbortError",
      });
    }),
);

ipcTest(
  "Fifo: a path that is not a FIFO, or is missing, is a clear typed error",
  () =>
    withDirectory(async (directory) => {
      const file = `${directory}/file`;
      Deno.writeTextFileSync(file, "x");
      await assert.rejects(
        Fifo.openReader(file),
        (e: unknown) => e instanceof NotAFifoError && /regular file/.test((e as Error).message),
      );
      await assert.rejects(Fifo.openWriter(directory), NotAFifoError);
      assert.throws(() => Fifo.unlink(file), NotAFifoError);
      await assert.rejects(Fifo.openReader(`${directory}/missing`), NotFoundError);
      await assert.rejects(Fifo.openWriter(`${directory}/no/such/dir`), NotFoundError);
    }),
);

ipcTest("Fifo: unrelated processes meet by path", () =>
  withDirectory(async (directory) => {
    const path = `${directory}/fifo`;
    Fifo.create(path);
    const mod = new URL("../mod.ts", import.meta.url).href;
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const { Fifo } = await import(${JSON.stringify(mod)});
         using w = await Fifo.openWriter(${JSON.stringify(path)}, { timeout: 10000 });
         await w.write(new TextEncoder().encode("from another process"));`,
      ],
    }).spawn();
    using reader = await Fifo.openReader(path, { timeout: 10_000 });
    const chunks = [];
    for await (const chunk of reader.readable()) chunks.push(new TextDecoder().decode(chunk));
    assert.equal(chunks.join(""), "from another process");
    assert.equal((await writer.status).code, 0);
  }));

const badPaths: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ["an empty path", "", TypeError],
  ["a path with NUL", "/tmp/a\0b", TypeError],
  ["a number", 42, TypeError],
  ["a path over PATH_MAX", "/tmp/" + "x".repeat(5000), RangeError],
];

for (const [why, path, ErrorClass] of badPaths) {
  ipcTest(`Fifo rejects ${why} before any syscall`, async () => {
    // deno-lint-ignore no-explicit-any
    const anyPath = path as any;
    assert.throws(() => Fifo.create(anyPath), ErrorClass);
    assert.throws(() => Fifo.unlink(anyPath), ErrorClass);
    await assert.rejects(Fifo.openReader(anyPath), ErrorClass);
    await assert.rejects(Fifo.openWriter(anyPath), ErrorClass);
  });
}

ipcTest("Fifo.create() rejects a bad mode before any syscall", () =>
  withDirectory((directory) => {
    assert.throws(() => Fifo.create(`${directory}/f`, { mode: 0o1000 }), RangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => Fifo.create(`${directory}/f`, { mode: "600" as any }), TypeError);
    assert.throws(() => Deno.statSync(`${directory}/f`), Deno.errors.NotFound);
  }));

ipcTest(
  "a waiting open is cancelled by its timeout even when the FIFO was unlinked meanwhile",
  async () => {
    const path = await Deno.makeTempFile({ prefix: "deno-ipc-fifo-" });
    await Deno.remove(path);
    Fifo.create(path);
    try {
      const opening = Fifo.openReader(path, { timeout: 100 });
      opening.catch(() => {});
      await delay(20);
      Fifo.unlink(path);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const guard = new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 10_000));
      const outcome = await Promise.race([opening.then(() => "opened", (error) => error), guard]);
      clearTimeout(timer);
      assert.ok(outcome instanceof TimedOutError, `expected a timeout, got ${outcome}`);
    } finally {
      try {
        Fifo.unlink(path);
      } catch { /* already unlinked */ }
    }
  },
);

ipcTest(
  "opening a FIFO another user owns, or one open to group/other, is PermissionDeniedError",
  () =>
    withDirectory(async (directory) => {
      const path = `${directory}/fifo`;
      Fifo.create(path);
      Deno.chmodSync(path, 0o666);
      for (const open of [Fifo.openReader, Fifo.openWriter]) {
        await assert.rejects(
          open(path, { timeout: 2000 }),
          (e: unknown) => e instanceof PermissionDeniedError && /0o066/.test(e.message),
        );
      }
      // Allowed: it gets past the check and waits for a peer.
      await assert.rejects(
        Fifo.openReader(path, { timeout: 20, allowModes: 0o066 }),
        TimedOutError,
      );

      Deno.chmodSync(path, 0o600);
      Deno.chownSync(path, 65534, 65534);
      for (const open of [Fifo.openReader, Fifo.openWriter]) {
        await assert.rejects(
          open(path, { timeout: 2000 }),
          (e: unknown) => e instanceof PermissionDeniedError && /uid 65534/.test(e.message),
        );
      }
      await assert.rejects(
        Fifo.openReader(path, { timeout: 20, allowOtherOwners: true }),
        TimedOutError,
      );
    }),
);

ipcTest(
  "opening never follows a symbolic link planted at the FIFO's path",
  () =>
    withDirectory(async (directory) => {
      const target = `${directory}/real`;
      const link = `${directory}/link`;
      Fifo.create(target);
      Deno.symlinkSync(target, link);
      for (const open of [Fifo.openReader, Fifo.openWriter]) {
        await assert.rejects(
          open(link, { timeout: 2000 }),
          (e: unknown) => e instanceof NotAFifoError && /symbolic link/.test(e.message),
        );
      }
    }),
);

ipcTest(
  "unlink removes neither a symbolic link to a FIFO nor another user's FIFO",
  () =>
    withDirectory((directory) => {
      const target = `${directory}/real`;
      const link = `${directory}/link`;
      Fifo.create(target);
      Deno.symlinkSync(target, link);
      assert.throws(() => Fifo.unlink(link), NotAFifoError);
      assert.ok(Deno.lstatSync(link).isSymlink, "the link was removed");
      assert.ok(Deno.lstatSync(target), "the FIFO behind the link was removed");

      Deno.chownSync(target, 65534, 65534);
      assert.throws(
        () => Fifo.unlink(target),
        (e: unknown) => e instanceof PermissionDeniedError && /uid 65534/.test(e.message),
      );
      assert.ok(Deno.lstatSync(target));
      Fifo.unlink(target, { allowOtherOwners: true });
      assert.throws(() => Deno.lstatSync(target), Deno.errors.NotFound);
      // A relative path is removed relative to the working directory.
      const cwd = Deno.cwd();
      Deno.chdir(directory);
      try {
        Fifo.create("relative");
        Fifo.unlink("relative");
        assert.throws(() => Deno.lstatSync(`${directory}/relative`), Deno.errors.NotFound);
      } finally {
        Deno.chdir(cwd);
      }
    }),
);

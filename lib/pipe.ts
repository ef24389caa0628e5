/**
 * Ordinary pipes: a one-way conduit of bytes from a writer to a reader, usually between
 * a parent and the child it starts (pipe(2)). Both ends are non-blocking file
 * descriptors; the awaitable forms wait in poll(2) off the main thread.
 *
 * - EOF: the reader sees `null` once every writer has closed its end.
 * - Broken pipe: writing when every reader has closed is a `BrokenPipeError` (Deno
 *   ignores SIGPIPE, so the process is never killed by it).
 * - Atomicity: a write of at most `PIPE_BUF` (4096 on Linux) bytes is never interleaved
 *   with other writers' data.
 *
 * @module
 */
import { C } from "../ffi/constants.ts";
import {
  check,
  closedError,
  errnoBelieved,
  errnoError,
  lastErrno,
  NotFoundError,
  timedOutError,
} from "../ffi/errno.ts";
import { ERRNO } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import { pollReady } from "./_poll.ts";
import { cString, describe, validateInteger, validateOptions } from "./_validate.ts";
import { PENDING, untilDefined, type Waitable, waitFor, type WaitOptions } from "./_wait.ts";

/** Bytes a pipe write can carry without being interleaved with other writers' data. */
export const PIPE_BUF: number = C.PIPE_BUF;

// One read(2) or write(2) moves at most this much (keeps results within an int).
const MAX_TRANSFER = 2 ** 30;
const CHUNK = 64 * 1024;

function setNonBlocking(fd: number, on: boolean, name: string): void {
  const { symbols } = libc();
  const flags = check("fcntl", symbols.fcntl(fd, C.F_GETFL, 0), name);
  const wanted = on ? flags | C.O_NONBLOCK : flags & ~C.O_NONBLOCK;
  if (wanted !== flags) check("fcntl", symbols.fcntl(fd, C.F_SETFL, wanted), name);
}

/** What the read and write ends share: the descriptor, its name, closing. */
export abstract class PipeEnd implements Disposable {
  readonly #fd: number;
  readonly #name: string;
  readonly #what: string;
  readonly #lifetime: Lifetime;

  /** For subclasses: takes ownership of `fd` and makes it non-blocking. */
  protected constructor(fd: number, what: string, name: string) {
    validateInteger(fd, "fd", 0, 2 ** 31 - 1);
    if (typeof name !== "string") {
      throw new TypeError(`Invalid name: expected a string, got ${describe(name)}`);
    }
    if (typeof what !== "string") {
      throw new TypeError(`Invalid what: expected a string, got ${describe(what)}`);
    }
    this.#fd = fd;
    this.#name = name;
    this.#what = what;
    setNonBlocking(fd, true, name);
    this.#lifetime = new Lifetime(() => {
      libc().symbols.close(fd);
    });
  }

  /** The file descriptor number (valid until `close()`). */
  get fd(): number {
    return this.#fd;
  }

  /** What the end is, for messages: `pipe read end 7`, or a FIFO's path. */
  get name(): string {
    return this.#name;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** Closes this end. A wait in progress rejects with `ClosedError`. Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** A new descriptor for the same end (O_CLOEXEC), e.g. for a second writer process. */
  protected duplicateFd(): number {
    this.assertOpen("duplicate");
    return check("fcntl", libc().symbols.fcntl(this.#fd, C.F_DUPFD_CLOEXEC, 0), this.#name);
  }

  /** Throws `ClosedError` naming `operation` when this end is closed. */
  protected assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, this.#what, this.#name);
  }

  /**
   * Runs `attempt` until it returns something other than `undefined`, waiting in
   * poll(2) for `events` between attempts.
   */
  protected waitUntil<T>(
    operation: string,
    attempt: () => T | undefined,
    events: number,
    options: WaitOptions | undefined,
  ): Promise<T> {
    return waitFor(
      this.#waitable(operation, untilDefined(attempt), events),
      options,
    );
  }

  #waitable<T>(
    operation: string,
    attempt: () => T | typeof PENDING,
    events: number,
  ): Waitable<T> {
    return {
      lifetime: this.#lifetime,
      attempt,
      park: async (ms) => {
        await pollReady(this.#fd, events, ms);
        return PENDING;
      },
      closedError: () => closedError(operation, this.#what, this.#name),
      timedOutError: (timeout) => timedOutError(operation, this.#what, this.#name, timeout),
      spin: 0, // a pipe's peer is a syscall away: spinning on read(2) costs more than poll
    };
  }
}

function validateBuffer(buffer: unknown, what: string): Uint8Array {
  if (!(buffer instanceof Uint8Array)) {
    throw new TypeError(`Invalid ${what}: expected a Uint8Array`);
  }
  return buffer;
}

/**
 * The read end of a pipe or FIFO.
 *
 * @example Read what was written, then EOF
 * ```ts
 * import { createPipe } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const { reader, writer } = createPipe();
 * using _r = reader;
 * await writer.write(new TextEncoder().encode("Greetings"));
 * writer.close();
 * const buffer = new Uint8Array(64);
 * const n = await reader.read(buffer);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "Greetings");
 * assert.equal(await reader.read(buffer), null);
 * ```
 */
export class PipeReader extends PipeEnd {
  /** Wraps a descriptor this object will own (and make non-blocking). */
  constructor(fd: number, name?: string, what = "pipe") {
    validateInteger(fd, "fd", 0, 2 ** 31 - 1); // before it is put in the default name
    super(fd, what, name ?? `pipe read end ${fd}`);
  }

  /** Another handle on this read end (its own descriptor; close both for EOF). */
  duplicate(): PipeReader {
    const fd = this.duplicateFd();
    return new PipeReader(fd, this.name.replace(/\d+$/, String(fd)));
  }

  /**
   * Reads what is there now into `buffer`: the number of bytes, `null` at EOF (every
   * writer closed), or `undefined` when nothing is there yet.
   */
  tryRead(buffer: Uint8Array): number | null | undefined {
    this.assertOpen("read");
    validateBuffer(buffer, "read buffer");
    return this.#attempt(buffer);
  }

  /** Reads at least one byte into `buffer`, waiting for data; `null` at EOF. */
  read(buffer: Uint8Array, options?: WaitOptions): Promise<number | null> {
    try {
      this.assertOpen("read");
      validateBuffer(buffer, "read buffer");
      const now = this.#attempt(buffer);
      if (now !== undefined) return Promise.resolve(now);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.waitUntil("read", () => this.#attempt(buffer), C.POLLIN, options);
  }

  /** The bytes as a ReadableStream of chunks (up to 64 KiB each), closing at EOF. */
  readable(): ReadableStream<Uint8Array> {
    return new ReadableStream({
      pull: async (controller) => {
        const chunk = new Uint8Array(CHUNK);
        const n = await this.read(chunk);
        if (n === null) {
          controller.close();
          this.close();
        } else controller.enqueue(chunk.subarray(0, n));
      },
      cancel: () => this.close(),
    });
  }

  #attempt(buffer: Uint8Array): number | null | undefined {
    if (buffer.length === 0) return 0;
    const size = BigInt(Math.min(buffer.length, MAX_TRANSFER));
    let n = libc().symbols.read(this.fd, buffer, size);
    if (n < 0 && !errnoBelieved("read")) n = libc().symbols.read(this.fd, buffer, size);
    if (n > 0) return n;
    if (n === 0) return null;
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return undefined;
    throw errnoError(errno, "read", { objectName: this.name });
  }
}

/**
 * The write end of a pipe or FIFO.
 *
 * @example Writing after the reader closed is a BrokenPipeError
 * ```ts
 * import { BrokenPipeError, createPipe } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const { reader, writer } = createPipe();
 * using _w = writer;
 * reader.close();
 * await assert.rejects(writer.write(new Uint8Array([1])), BrokenPipeError);
 * ```
 */
export class PipeWriter extends PipeEnd {
  /** Wraps a descriptor this object will own (and make non-blocking). */
  constructor(fd: number, name?: string, what = "pipe") {
    validateInteger(fd, "fd", 0, 2 ** 31 - 1); // before it is put in the default name
    super(fd, what, name ?? `pipe write end ${fd}`);
  }

  /**
   * Another handle on this write end (its own descriptor), e.g. for a second writer
   * process. The reader sees EOF only once every handle is closed.
   */
  duplicate(): PipeWriter {
    const fd = this.duplicateFd();
    return new PipeWriter(fd, this.name.replace(/\d+$/, String(fd)));
  }

  /**
   * Writes what fits now: the number of bytes written (possibly fewer than given), or
   * `undefined` when the pipe is full. Up to {@link PIPE_BUF} bytes go all at once or
   * not at all.
   */
  tryWrite(bytes: Uint8Array): number | undefined {
    this.assertOpen("write");
    validateBuffer(bytes, "bytes");
    return this.#attempt(bytes);
  }

  /** Writes all of `bytes`, waiting while the pipe is full. */
  write(bytes: Uint8Array, options?: WaitOptions): Promise<void> {
    let offset = 0;
    try {
      this.assertOpen("write");
      validateBuffer(bytes, "bytes");
      offset = this.#attempt(bytes) ?? 0;
      if (offset === bytes.length) return WRITTEN;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.waitUntil(
      "write",
      () => {
        offset += this.#attempt(bytes.subarray(offset)) ?? 0;
        return offset === bytes.length ? true : undefined;
      },
      C.POLLOUT,
      options,
    ).then(() => {});
  }

  /** A WritableStream that writes each chunk; closing it closes this end. */
  writable(): WritableStream<Uint8Array> {
    return new WritableStream({
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  #attempt(bytes: Uint8Array): number | undefined {
    if (bytes.length === 0) return 0;
    const size = BigInt(Math.min(bytes.length, MAX_TRANSFER));
    let n = libc().symbols.write(this.fd, bytes, size);
    if (n < 0 && !errnoBelieved("write")) n = libc().symbols.write(this.fd, bytes, size);
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return undefined;
    throw errnoError(errno, "write", {
      objectName: this.name,
      message: errno === ERRNO.EPIPE
        ? `Cannot write to ${this.name}: every reader has closed it (EPIPE)`
        : undefined,
    });
  }
}

const WRITTEN: Promise<void> = Promise.resolve();

/**
 * Creates a pipe (pipe2(2) with O_CLOEXEC, so no child inherits it by accident; see
 * {@link spawnWithPipes} to hand ends to a child).
 *
 * @example A pipe within one process
 * ```ts
 * import { createPipe } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const { reader, writer } = createPipe();
 * using _r = reader;
 * using _w = writer;
 * assert.equal(writer.tryWrite(new Uint8Array([1, 2])), 2);
 * assert.equal(reader.tryRead(new Uint8Array(8)), 2);
 * assert.equal(reader.tryRead(new Uint8Array(8)), undefined);
 * ```
 */
export function createPipe(): { reader: PipeReader; writer: PipeWriter } {
  const fds = new Int32Array(2);
  const { symbols } = libc();
  check("pipe2", symbols.pipe2(fds, C.O_CLOEXEC));
  let reader: PipeReader | undefined;
  try {
    reader = new PipeReader(fds[0]);
    return { reader, writer: new PipeWriter(fds[1]) };
  } catch (error) {
    // Neither end may leak when making the other fails.
    if (reader) reader.close();
    else symbols.close(fds[0]);
    symbols.close(fds[1]);
    throw error;
  }
}

/** Environment variable that tells a child the numbers of the pipe ends it inherited. */
export const PIPE_FDS_ENV = "DENO_IPC_PIPE_FDS";

/** Options of {@link spawnWithPipes}. */
export interface SpawnWithPipesOptions {
  /**
   * Arguments, or a function of the fd numbers the child will have (for commands that
   * take them on the command line, e.g. `cat /dev/fd/5`).
   */
  args?: string[] | ((fds: Record<string, number>) => string[]);
  /** The ends to hand over, by name. The parent's copies are closed after the spawn. */
  ends: Record<string, PipeReader | PipeWriter>;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** The child's standard input. Default: inherit. */
  stdin?: "piped" | "inherit" | "null";
  /** The child's standard output. Default: inherit. */
  stdout?: "piped" | "inherit" | "null";
  /** The child's standard error. Default: inherit. */
  stderr?: "piped" | "inherit" | "null";
}

// The child's copy of `end`: a blocking descriptor, as programs expect. O_NONBLOCK
// belongs to the open file description, so a dup(2) would share it with every other
// copy in this process (a duplicate() the caller kept would start blocking). Reopening
// the pipe through /proc/self/fd gives the child a description of its own; without
// /proc, or when a write end's readers are gone (ENXIO), fall back to dup.
function childCopy(end: PipeReader | PipeWriter): number {
  const { symbols } = libc();
  const access = end instanceof PipeReader ? C.O_RDONLY : C.O_WRONLY;
  const fd = symbols.open(cString(`/proc/self/fd/${end.fd}`), access | C.O_NONBLOCK, 0);
  if (fd >= 0) {
    setNonBlocking(fd, false, end.name);
    return fd;
  }
  setNonBlocking(end.fd, false, end.name);
  return check("dup", symbols.dup(end.fd), end.name);
}

/**
 * Starts `command` so that it inherits exactly the given pipe ends and no other pipe:
 * each end is dup(2)licated (the duplicate, unlike the O_CLOEXEC original, survives
 * exec), the child is spawned, and then the duplicates and the parent's own ends are
 * closed. That last step is what lets EOF work: a reader sees EOF only when no process
 * holds a write end, the parent included. The child learns its fd numbers from the
 * environment variable {@link PIPE_FDS_ENV} (see {@link inheritedPipeEnds}).
 *
 * @example Any command: `cat` reads the pipe through the fd it was told about
 * ```ts
 * import { createPipe, spawnWithPipes } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const { reader, writer } = createPipe();
 * using _w = writer;
 * const child = spawnWithPipes("cat", {
 *   args: (fds) => [`/dev/fd/${fds.input}`],
 *   ends: { input: reader },
 *   stdout: "piped",
 * });
 * assert.equal(reader.closed, true); // the parent's copy is closed, so EOF can happen
 * await writer.write(new TextEncoder().encode("Greetings"));
 * writer.close();
 * const { stdout } = await child.output();
 * assert.equal(new TextDecoder().decode(stdout), "Greetings");
 * ```
 */
export function spawnWithPipes(command: string, options: SpawnWithPipesOptions): Deno.ChildProcess {
  const checked = validateOptions<SpawnWithPipesOptions>(options, "spawn");
  if (typeof command !== "string") throw new TypeError("Invalid command: expected a string");
  const ends = checked.ends;
  if (ends === null || typeof ends !== "object") {
    throw new TypeError("Invalid ends: expected an object of pipe ends by name");
  }
  for (const [key, end] of Object.entries(ends)) {
    if (!(end instanceof PipeReader || end instanceof PipeWriter)) {
      throw new TypeError(`Invalid end "${key}": expected a PipeReader or PipeWriter`);
    }
    if (end.closed) throw closedError("hand over", "pipe", end.name);
  }
  const { symbols } = libc();
  const duplicates: Record<string, number> = {};
  try {
    for (const [key, end] of Object.entries(ends)) duplicates[key] = childCopy(end);
    const args = typeof checked.args === "function"
      ? checked.args({ ...duplicates })
      : checked.args;
    return new Deno.Command(command, {
      args: args ?? [],
      env: { ...checked.env, [PIPE_FDS_ENV]: JSON.stringify(duplicates) },
      stdin: checked.stdin ?? "inherit",
      stdout: checked.stdout ?? "inherit",
      stderr: checked.stderr ?? "inherit",
    }).spawn();
  } finally {
    for (const fd of Object.values(duplicates)) symbols.close(fd);
    for (const end of Object.values(ends)) end.close();
  }
}

/**
 * In a child started by {@link spawnWithPipes}: the pipe ends it inherited, by the names
 * the parent gave them. Each name is returned once (the caller owns the end).
 *
 * @example In the child
 * ```ts ignore
 * import { inheritedPipeEnds } from "@deno-ipc/ipc";
 *
 * const { input } = inheritedPipeEnds({ input: "reader" });
 * ```
 */
export function inheritedPipeEnds<T extends Record<string, "reader" | "writer">>(
  kinds: T,
): { [K in keyof T]: T[K] extends "reader" ? PipeReader : PipeWriter } {
  validateOptions(kinds, "inherited pipe ends (kinds)");
  const text = Deno.env.get(PIPE_FDS_ENV);
  if (!text) {
    throw new NotFoundError(ERRNO.ENOENT, "inheritedPipeEnds", {
      objectName: PIPE_FDS_ENV,
      message: `No inherited pipe ends: ${PIPE_FDS_ENV} is not set`,
    });
  }
  const fds = JSON.parse(text) as Record<string, number>;
  const result: Record<string, PipeReader | PipeWriter> = {};
  for (const [key, kind] of Object.entries(kinds)) {
    const fd = fds[key];
    if (!Number.isInteger(fd)) throw new TypeError(`No inherited pipe end named "${key}"`);
    // Inherited without close-on-exec; set it, or every process this child spawns would
    // hold the end too (and a reader would never see EOF).
    check("fcntl", libc().symbols.fcntl(fd, C.F_SETFD, C.FD_CLOEXEC), `pipe end "${key}"`);
    result[key] = kind === "reader" ? new PipeReader(fd) : new PipeWriter(fd);
  }
  return result as { [K in keyof T]: T[K] extends "reader" ? PipeReader : PipeWriter };
}

/** The parent's side of a two-way connection made by {@link spawnWithPipePair}. */
export interface PipedChild {
  /** The child process. */
  child: Deno.ChildProcess;
  /** Reads what the child writes to its `output` end. */
  reader: PipeReader;
  /** Writes to what the child reads from its `input` end. */
  writer: PipeWriter;
}

/**
 * Two pipes for two-way talk with a child: the child inherits `input` (a reader) and
 * `output` (a writer); get them there with `inheritedPipeEnds({ input: "reader",
 * output: "writer" })`.
 *
 * @example Start a child with a pipe each way
 * ```ts ignore
 * import { spawnWithPipePair } from "@deno-ipc/ipc";
 *
 * const { child, reader, writer } = spawnWithPipePair(Deno.execPath(), {
 *   args: ["run", "-A", "child.ts"],
 * });
 * ```
 */
export function spawnWithPipePair(
  command: string,
  options: Omit<SpawnWithPipesOptions, "ends"> = {},
): PipedChild {
  const toChild = createPipe();
  const fromChild = createPipe();
  try {
    const child = spawnWithPipes(command, {
      ...options,
      ends: { input: toChild.reader, output: fromChild.writer },
    });
    return { child, reader: fromChild.reader, writer: toChild.writer };
  } catch (error) {
    for (const end of [toChild.reader, toChild.writer, fromChild.reader, fromChild.writer]) {
      end.close();
    }
    throw error;
  }
}

/**
 * Readers of a file log (see lib/file_log.ts): follow the log from a sequence number or
 * a named, persisted cursor, and wait for new records with inotify(7) or by polling.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import {
  check,
  closedError,
  ErrnoError,
  errnoError,
  lastErrno,
  timedOutError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import {
  checkedOrClosed,
  checkOwnership,
  fileSize,
  fileStatus,
  openNoFollow,
  preadFully,
  pwriteFully,
  trySetOfdLock,
} from "./_file.ts";
import {
  CURSOR_DIRECTORY,
  CURSOR_SIZE,
  decodeCursor,
  encodeCursor,
  listSegments,
  LOCK_FILE,
  READER_KEY,
  readRecordAt,
  scanError,
  segmentName,
  tryOpenSegment,
} from "./_file_log_format.ts";
import { Lifetime } from "./_lifetime.ts";
import { pollReady } from "./_poll.ts";
import { cString, describe, validateInteger, validateOptions } from "./_validate.ts";
import { PENDING, untilDefined, type Waitable, waitFor, type WaitOptions } from "./_wait.ts";

/** A record of a file log. */
export interface LogRecord {
  /** Its sequence number: records are numbered from 0 in append order. */
  readonly sequence: number;
  /**
   * Its payload. Small payloads share an ArrayBuffer with others: use `byteOffset`, or
   * `slice()` to own a standalone copy.
   */
  readonly data: Uint8Array;
}

/** Options of `FileLog.reader()`. */
export interface FileLogReaderOptions {
  /**
   * Where to start: a sequence number, `"start"` (the oldest record still kept) or
   * `"end"` (only records appended from now on). With a `cursor` that already exists,
   * the cursor's position wins. Positioning reads the segment holding that record from
   * its start, synchronously (a smaller `segmentSize` makes this shorter). Default:
   * `"start"`.
   */
  from?: number | "start" | "end";
  /**
   * Name of a persisted cursor (letters, digits, `.`, `_`, `-`; at most 64): the reader
   * starts where the cursor is and moves it as it reads, so a restarted reader resumes
   * there. Segments are removed only once every named cursor is past them. One reader at
   * a time may use a cursor (another gets code `EBUSY`).
   */
  cursor?: string;
  /**
   * With a cursor: store the position as each record is read (default true), before the
   * caller has handled it, so a reader that dies after `read()` returned does not get
   * that record again: at most once. With `false` the position is stored by
   * {@link FileLogReader.commit}: commit after handling a record, and a reader that dies
   * before its commit reads the record again after a restart: at least once.
   */
  autoCommit?: boolean;
  /**
   * How to wait for records: `"inotify"` (change notification, waited off the main
   * thread), `"poll"` (check every `pollInterval` ms), or `"auto"`: inotify, and polling
   * where inotify cannot be set up (no inotify, the watch limit reached). Note that
   * inotify does not see writes made by other machines to a network file system: use
   * polling there. Default: `"auto"`.
   */
  notify?: "auto" | "inotify" | "poll";
  /** Milliseconds between checks when polling. Default: 10. */
  pollInterval?: number;
}

/** What a reader inherits from its log handle. */
export interface ReaderSettings {
  mode: number;
  maxRecordSize: number;
}

const WHAT = "file log reader";
const CURSOR_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const INOTIFY_BUFFER = 4096;

/** Checks a cursor name: 1 to 64 letters, digits, ".", "_" or "-", not only dots. */
export function validateCursorName(cursor: unknown): string {
  if (typeof cursor !== "string" || !CURSOR_NAME.test(cursor) || /^\.+$/.test(cursor)) {
    throw new TypeError(
      `Invalid cursor name ${describe(cursor)}: use 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  return cursor;
}

function validateReaderOptions(options: unknown): FileLogReaderOptions {
  const checked = validateOptions<FileLogReaderOptions>(options, WHAT);
  const { from, cursor, autoCommit, notify, pollInterval } = checked;
  if (from !== undefined && from !== "start" && from !== "end") {
    validateInteger(from, "reader from", 0);
  }
  if (cursor !== undefined) validateCursorName(cursor);
  if (autoCommit !== undefined && typeof autoCommit !== "boolean") {
    throw new TypeError("Invalid autoCommit: expected a boolean");
  }
  if (notify !== undefined && !["auto", "inotify", "poll"].includes(notify)) {
    throw new TypeError(`Invalid notify: expected "auto", "inotify" or "poll"`);
  }
  if (pollInterval !== undefined) validateInteger(pollInterval, "poll interval", 1, 60_000);
  return checked;
}

/**
 * Reads a file log in order, from a position or a named cursor. Returned records are
 * whole and checked (CRC-32C, length, sequence number); a record being appended, or one
 * left partial by an appender that died, is waited on, never returned. Bytes that fail
 * the checks while no appender is active are a `CorruptedError`, never data.
 *
 * @example Follow a log, waiting for the next record
 * ```ts
 * import { FileLog } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * const path = `${dir}/log`;
 * using log = FileLog.open(path);
 * using reader = log.reader({ from: "end" });
 * const next = reader.read({ timeout: 5000 });
 * await log.append(new TextEncoder().encode("news"));
 * assert.equal(new TextDecoder().decode((await next).data), "news");
 * FileLog.remove(path);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class FileLogReader implements Disposable {
  readonly #path: string;
  readonly #dirFd: number;
  readonly #lockFd: number;
  readonly #settings: ReaderSettings;
  readonly #lifetime: Lifetime;
  readonly #autoCommit: boolean;
  readonly #pollInterval: number;
  #cursorFd = -1;
  #cursorName: string | undefined;
  #notifyFd = -1;
  #segmentFd = -1;
  #segmentFirst = 0;
  #offset = 0;
  #next = 0;
  #committed = -1;
  #cursorCreated = false;

  /** Made by `FileLog.reader()` (a TypeError otherwise). */
  constructor(
    key: symbol,
    path: string,
    logDirFd: number,
    settings: ReaderSettings,
    options: FileLogReaderOptions = {},
  ) {
    if (key !== READER_KEY) {
      throw new TypeError("Invalid key: a FileLogReader is made by FileLog.reader(), not by new");
    }
    const checked = validateReaderOptions(options);
    const { symbols } = libc();
    this.#path = path;
    this.#settings = settings;
    this.#autoCommit = checked.autoCommit ?? true;
    this.#pollInterval = checked.pollInterval ?? 10;
    this.#dirFd = check("fcntl", symbols.fcntl(logDirFd, C.F_DUPFD_CLOEXEC, 0), path);
    // The reader's own open file description of the lock file: a shared lock taken
    // through the log handle's would convert that handle's own lock.
    let lockFd = -1;
    try {
      lockFd = openNoFollow(this.#dirFd, LOCK_FILE, C.O_RDWR, 0, `${path}/${LOCK_FILE}`);
    } catch (error) {
      symbols.close(this.#dirFd);
      throw error;
    }
    this.#lockFd = lockFd;
    this.#lifetime = new Lifetime(() => {
      if (this.#segmentFd >= 0) symbols.close(this.#segmentFd);
      if (this.#cursorFd >= 0) symbols.close(this.#cursorFd);
      if (this.#notifyFd >= 0) symbols.close(this.#notifyFd);
      symbols.close(lockFd);
      symbols.close(this.#dirFd);
    });
    try {
      let start = checked.from ?? "start";
      if (checked.cursor !== undefined) {
        const stored = this.#openCursor(checked.cursor);
        if (stored !== undefined) start = stored;
      }
      this.#seek(start);
      if (this.#cursorFd >= 0 && this.#committed !== this.#next) this.#writeCursor();
      if (checked.notify !== "poll") this.#watch(checked.notify === "inotify");
    } catch (error) {
      // A cursor this failed call created would keep every segment from rotating away.
      if (this.#cursorCreated && checked.cursor !== undefined) {
        libc().symbols.unlinkat(
          this.#dirFd,
          cString(`${CURSOR_DIRECTORY}/${checked.cursor}`),
          0,
        );
      }
      this.close();
      throw error;
    }
  }

  /** The log directory's path. */
  get path(): string {
    return this.#path;
  }

  /** Sequence number of the next record this reader returns. */
  get position(): number {
    return this.#next;
  }

  /** The cursor's name, if the reader has one. */
  get cursor(): string | undefined {
    return this.#cursorName;
  }

  /** How this reader waits: `"inotify"` or `"poll"`. */
  get notification(): "inotify" | "poll" {
    return this.#notifyFd >= 0 ? "inotify" : "poll";
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * The next record if it is there, else `undefined`; never waits. Throws
   * `CorruptedError` for bytes that fail the checks, and `NotFoundError` when the
   * reader's position was removed by rotation.
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * using reader = log.reader();
   * assert.equal(reader.tryRead(), undefined);
   * await log.append(new Uint8Array([42]));
   * assert.deepEqual(reader.tryRead()?.data, new Uint8Array([42]));
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  tryRead(): LogRecord | undefined {
    this.#assertOpen("read");
    return this.#attempt();
  }

  /**
   * Waits for the next record (inotify or polling, off the main thread). Rejects with
   * `TimedOutError`, the signal's reason on abort, `ClosedError` on `close()`, and as
   * {@link FileLogReader.tryRead} throws.
   *
   * @example
   * ```ts
   * import { FileLog, TimedOutError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * using reader = log.reader({ notify: "poll", pollInterval: 5 });
   * await assert.rejects(reader.read({ timeout: 20 }), TimedOutError);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  read(options: WaitOptions = {}): Promise<LogRecord> {
    this.#assertOpen("read");
    const waitable: Waitable<LogRecord> = {
      attempt: untilDefined(() => this.#attempt()),
      park: (ms) => this.#park(ms),
      lifetime: this.#lifetime,
      closedError: () => closedError("read", WHAT, this.#path),
      timedOutError: (ms) => timedOutError("read", WHAT, this.#path, ms),
      spin: 0,
    };
    return waitFor(waitable, options);
  }

  /**
   * Stores the reader's position in its cursor (needed only with `autoCommit: false`).
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * await log.appendBatch([new Uint8Array(1), new Uint8Array(1)]);
   * {
   *   using reader = log.reader({ cursor: "c", autoCommit: false });
   *   reader.tryRead();
   *   reader.commit();
   *   reader.tryRead(); // not committed
   * }
   * using again = log.reader({ cursor: "c" });
   * assert.equal(again.position, 1);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  commit(): void {
    this.#assertOpen("commit");
    if (this.#cursorFd < 0) throw new TypeError("This reader has no cursor to commit");
    this.#writeCursor();
  }

  /** Closes the reader's files and its inotify watch; the cursor stays. Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as {@link FileLogReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  // Opens (creating) the cursor file and locks it; returns its position, or undefined
  // for a new cursor.
  #openCursor(name: string): number | undefined {
    const { symbols } = libc();
    const label = `${this.#path}/${CURSOR_DIRECTORY}/${name}`;
    const cursors = openNoFollow(this.#dirFd, CURSOR_DIRECTORY, C.O_RDONLY | C.O_DIRECTORY, 0);
    try {
      try {
        this.#cursorFd = openNoFollow(
          cursors,
          name,
          C.O_RDWR | C.O_CREAT | C.O_EXCL,
          this.#settings.mode,
          label,
        );
        this.#cursorCreated = true;
      } catch (error) {
        if (!(error instanceof ErrnoError && error.code === "EEXIST")) throw error;
        this.#cursorFd = openNoFollow(cursors, name, C.O_RDWR, 0, label);
      }
    } finally {
      symbols.close(cursors);
    }
    this.#cursorName = name;
    const { size } = checkOwnership(this.#cursorFd, label, C.S_IFREG, this.#settings.mode, WHAT);
    if (!trySetOfdLock(this.#cursorFd, "exclusive", 0, 0, label)) {
      throw new ErrnoError(ERRNO.EBUSY, "open", {
        objectName: label,
        message: `Cursor "${name}" of file log "${this.#path}" is in use by another reader`,
      });
    }
    if (size === 0) return undefined;
    const bytes = new Uint8Array(CURSOR_SIZE);
    const length = size === CURSOR_SIZE ? preadFully(this.#cursorFd, bytes, 0, label) : size;
    this.#committed = decodeCursor(bytes, length, label);
    return this.#committed;
  }

  #writeCursor(): void {
    const label = `${this.#path}/${CURSOR_DIRECTORY}/${this.#cursorName}`;
    pwriteFully(this.#cursorFd, encodeCursor(this.#next), 0, label);
    this.#committed = this.#next;
  }

  // Positions the reader before record `from`, scanning its segment from the start.
  #seek(from: number | "start" | "end"): void {
    const segments = listSegments(this.#dirFd, this.#path);
    if (segments.length === 0) {
      if (typeof from === "number" && from !== 0) throw this.#pastEnd(from, 0);
      this.#segmentFirst = this.#next = 0;
      return;
    }
    const oldest = segments[0];
    if (typeof from === "number" && from < oldest) throw this.#rotatedAway(from, oldest);
    const target = from === "start" ? oldest : from === "end" ? Infinity : from;
    const first = target === Infinity
      ? segments.at(-1)!
      : segments.findLast((segment) => segment <= target)!;
    const fd = tryOpenSegment(this.#dirFd, first, C.O_RDONLY, this.#path);
    if (fd < 0) throw this.#rotatedAway(target, first);
    const name = `${this.#path}/${segmentName(first)}`;
    this.#segmentFd = checkedOrClosed(fd, name, C.S_IFREG, this.#settings.mode, WHAT);
    this.#segmentFirst = this.#next = first;
    this.#offset = 0;
    const size = fileSize(fd, this.#path);
    while (this.#next < target) {
      const record = this.#readAt(size, true);
      if (record === undefined) break;
    }
    if (target !== Infinity && this.#next < target) throw this.#pastEnd(target, this.#next);
  }

  #pastEnd(from: number, end: number): RangeError {
    return new RangeError(
      `Invalid reader from ${from}: file log "${this.#path}" ends at sequence number ${end}`,
    );
  }

  #rotatedAway(from: number, oldest: number): ErrnoError {
    return errnoError(ERRNO.ENOENT, "read", {
      objectName: this.#path,
      message: `Records from ${from} of file log "${this.#path}" were rotated away: the ` +
        `oldest kept is ${oldest}`,
    });
  }

  #segmentPath(): string {
    return `${this.#path}/${segmentName(this.#segmentFirst)}`;
  }

  // One step of reading: the next whole record, or undefined.
  #attempt(): LogRecord | undefined {
    const { symbols } = libc();
    for (let switches = 0; switches < 2; switches++) {
      if (this.#segmentFd < 0) {
        const fd = tryOpenSegment(this.#dirFd, this.#next, C.O_RDONLY, this.#path);
        if (fd < 0) return undefined;
        const name = `${this.#path}/${segmentName(this.#next)}`;
        this.#segmentFd = checkedOrClosed(fd, name, C.S_IFREG, this.#settings.mode, WHAT);
        this.#segmentFirst = this.#next;
        this.#offset = 0;
      }
      const size = fileSize(this.#segmentFd, this.#path);
      if (this.#offset < size) return this.#readAt(size, false);
      // At the end of this segment: has the log moved on to the next one? (An empty
      // segment cannot have a successor: a segment is named by its first record.)
      if (this.#next === this.#segmentFirst) return undefined;
      const newer = tryOpenSegment(this.#dirFd, this.#next, C.O_RDONLY, this.#path);
      if (newer < 0) {
        if (fileStatus(this.#segmentFd, this.#path).links === 0) this.#checkNotRotatedAway();
        return undefined;
      }
      // Safe to move on although we looked at this segment's size before: the next
      // segment is named by its first record, our next one, so that record and all
      // after it are there, never here.
      const name = `${this.#path}/${segmentName(this.#next)}`;
      checkedOrClosed(newer, name, C.S_IFREG, this.#settings.mode, WHAT);
      symbols.close(this.#segmentFd);
      this.#segmentFd = newer;
      this.#segmentFirst = this.#next;
      this.#offset = 0;
    }
    return undefined;
  }

  #checkNotRotatedAway(): void {
    const oldest = listSegments(this.#dirFd, this.#path)[0];
    if (oldest !== undefined && oldest > this.#next) throw this.#rotatedAway(this.#next, oldest);
  }

  // Reads the record at the current offset. Bytes that fail the checks may be a torn
  // tail an appender is repairing right now (truncate, then write): they count as
  // corruption only when they fail again while we hold a shared lock, that is while
  // no appender is at work.
  #readAt(size: number, scanning: boolean): LogRecord | undefined {
    const name = this.#segmentPath();
    const maximum = this.#settings.maxRecordSize;
    let read = readRecordAt(this.#segmentFd, this.#offset, this.#next, size, maximum, name);
    if (typeof read === "string") {
      if (!trySetOfdLock(this.#lockFd, "shared", 0, 1, this.#path)) return undefined;
      try {
        const stable = fileSize(this.#segmentFd, this.#path);
        read = readRecordAt(this.#segmentFd, this.#offset, this.#next, stable, maximum, name);
        if (typeof read === "string") throw scanError(name, this.#offset, read);
      } finally {
        trySetOfdLock(this.#lockFd, "unlock", 0, 1, this.#path);
      }
    }
    if (read === undefined) return undefined;
    const record = { sequence: this.#next, data: read.data };
    this.#offset = read.end;
    this.#next++;
    if (!scanning && this.#autoCommit && this.#cursorFd >= 0) this.#writeCursor();
    return record;
  }

  // Sets up inotify on the log directory (segments are modified and created there;
  // cursors live in a subdirectory, so their updates wake nobody).
  #watch(required: boolean): void {
    const { symbols } = libc();
    const fd = symbols.inotify_init1(C.IN_NONBLOCK | C.IN_CLOEXEC);
    if (fd < 0) {
      if (required) throw errnoError(lastErrno(), "inotify_init1", { objectName: this.#path });
      return;
    }
    const mask = C.IN_MODIFY | C.IN_CREATE | C.IN_MOVED_TO | C.IN_ONLYDIR;
    const watch = symbols.inotify_add_watch(fd, cString(`/proc/self/fd/${this.#dirFd}`), mask);
    if (watch < 0) {
      const errno = lastErrno();
      symbols.close(fd);
      if (required) throw errnoError(errno, "inotify_add_watch", { objectName: this.#path });
      return;
    }
    this.#notifyFd = fd;
  }

  async #park(ms: number): Promise<typeof PENDING> {
    const { symbols } = libc();
    if (this.#notifyFd < 0) {
      const sleep = Math.min(ms, this.#pollInterval);
      await symbols.usleep_async(Math.max(1, Math.round(sleep * 1000)));
      return PENDING;
    }
    await pollReady(this.#notifyFd, C.POLLIN, ms);
    // Drain the events: which file changed does not matter, the attempt looks.
    if (!this.#lifetime.closed) {
      while (symbols.read(this.#notifyFd, inotifyBuffer, BigInt(INOTIFY_BUFFER)) > 0) {
        // keep draining
      }
    }
    return PENDING;
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#path);
  }
}

const inotifyBuffer = new Uint8Array(INOTIFY_BUFFER);

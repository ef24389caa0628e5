/**
 * A shared append-only log in files: any number of writer and reader processes, crash
 * safe, with change notification. The course text's simplest IPC (processes sharing a
 * file), with the two problems it names solved and measured: updates are detected with
 * inotify(7) instead of polling, and torn or corrupted records are never taken as data.
 *
 * - Records are framed: a 24-byte header with length, sequence number and CRC-32C.
 * - Appends never interleave: each holds an exclusive open-file-description lock
 *   (fcntl(2) `F_OFD_SETLK`) on the log's lock file while it writes at the end. O_APPEND
 *   alone was not chosen: it is atomic only against other appends, not against the tail
 *   repair below, and it cannot assign sequence numbers.
 * - A writer killed in the middle of an append leaves a partial record. Readers see that
 *   the record is incomplete and wait; the next append, holding the lock (which the
 *   kernel released when the writer died), truncates the file back to the end of the last
 *   whole record. Nothing committed is lost: a record is committed when its whole write
 *   returned.
 *
 * @module
 */
import { C, ERRNO, SIGNALS } from "../ffi/constants.ts";
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
  AT_FDCWD,
  checkedOrClosed,
  checkOwnership,
  fileSize,
  fileStatus,
  openNoFollow,
  pollingWaitable,
  pwriteFully,
  trySetOfdLock,
  validatePath,
} from "./_file.ts";
import {
  CURSOR_DIRECTORY,
  directoryMode,
  encodeRecords,
  HEADER_SIZE,
  listDirectory,
  listSegments,
  LOCK_FILE,
  parseSegmentName,
  readCursorFile,
  READER_KEY,
  readRecordAt,
  scanError,
  segmentName,
  syncToDisk,
  testHooks,
  tryOpenSegment,
} from "./_file_log_format.ts";
import { FileLogReader, type FileLogReaderOptions, validateCursorName } from "./file_log_reader.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  cString,
  DEFAULT_MODE,
  validateInteger,
  validateMode,
  validateOptions,
} from "./_validate.ts";
import { PENDING, Turns, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

export { FileLogReader, type FileLogReaderOptions, type LogRecord } from "./file_log_reader.ts";

/**
 * When appends reach the disk:
 * - `"none"`: never forced. A record is safe against the death of any process as soon as
 *   `append()` returns (it is in the page cache), but a power loss or kernel crash can
 *   lose the latest records, and can leave a tail that is torn or holds garbage (then
 *   reported as `CorruptedError`).
 * - `"record"`: fdatasync(2) after every record, before `append()` resolves: a resolved
 *   append survives a power loss. Slowest.
 * - `"batch"`: one fdatasync(2) per `append()` or `appendBatch()` call: every record of
 *   a resolved call survives a power loss.
 */
export type SyncPolicy = "none" | "record" | "batch";

/** Options of {@link FileLog.open}. */
export interface FileLogOpenOptions {
  /** Create the log directory if it does not exist. Default: true. */
  create?: boolean;
  /**
   * Permission bits of created files (the directory also gets the matching x bits),
   * subject to the umask; existing files and the directory must grant no more than this.
   * Default: `0o600`.
   */
  mode?: number;
  /** When appends are forced to disk. Default: `"none"`. */
  sync?: SyncPolicy;
  /** Start a new segment file when an append would grow the current one past this. Default: 64 MiB. */
  segmentSize?: number;
  /**
   * The most segment files the log may have; an append that needs one more after old
   * segments were removed fails with code `ENOSPC`. Default: no limit.
   */
  maxSegments?: number;
  /**
   * Largest record, in bytes: appends refuse longer ones, and this handle's readers take
   * a longer length as corruption (so that a length never sizes a larger allocation):
   * give readers at least the bound of every writer. Appenders accept any record up to
   * {@link MAX_RECORD_SIZE_LIMIT} written by other handles. Default: 1 MiB.
   */
  maxRecordSize?: number;
}

const WHAT = "file log";
const DEFAULT_SEGMENT_SIZE = 64 * 2 ** 20;
const DEFAULT_MAX_RECORD_SIZE = 2 ** 20;
/** Records longer than this are refused by every log (keeps reads within one call). */
export const MAX_RECORD_SIZE_LIMIT = 64 * 2 ** 20;
// Bytes a writer checks between yields to the event loop when it catches up.
const SCAN_BYTES_PER_TURN = 2 ** 20;
const SYNC_POLICIES: readonly SyncPolicy[] = ["none", "record", "batch"];

/**
 * A handle on a file log: appends, and makes readers ({@link FileLog.reader}). The log
 * is a directory of segment files (named by the sequence number of their first record),
 * a lock file and named reader cursors.
 *
 * Sequence numbers count records from 0 across segments; a reader's position is the
 * sequence number of the next record it reads. Old segments are removed when an append
 * starts a new one and every named cursor is past them; with no named cursor nothing is
 * removed.
 *
 * @example Append, then read from the start
 * ```ts
 * import { FileLog } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * const path = `${dir}/log`;
 * using log = FileLog.open(path);
 * assert.equal(await log.append(new TextEncoder().encode("first")), 0);
 * assert.equal(await log.append(new TextEncoder().encode("second")), 1);
 * using reader = log.reader({ from: "start" });
 * const record = await reader.read({ timeout: 1000 });
 * assert.equal(record.sequence, 0);
 * assert.equal(new TextDecoder().decode(record.data), "first");
 * FileLog.remove(path);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class FileLog implements Disposable {
  readonly #path: string;
  readonly #dirFd: number;
  readonly #lockFd: number;
  readonly #mode: number;
  readonly #sync: SyncPolicy;
  readonly #segmentSize: number;
  readonly #maxSegments: number;
  readonly #maxRecordSize: number;
  readonly #lifetime: Lifetime;
  readonly #turns = new Turns();
  // The append end, valid while this handle holds the lock (re-checked at each append).
  #segmentFd = -1;
  #segmentFirst = 0;
  #tail = 0;
  #next = 0;

  private constructor(
    path: string,
    dirFd: number,
    lockFd: number,
    mode: number,
    options: Required<Omit<FileLogOpenOptions, "create" | "mode">>,
  ) {
    this.#path = path;
    this.#dirFd = dirFd;
    this.#lockFd = lockFd;
    this.#mode = mode;
    this.#sync = options.sync;
    this.#segmentSize = options.segmentSize;
    this.#maxSegments = options.maxSegments;
    this.#maxRecordSize = options.maxRecordSize;
    this.#lifetime = new Lifetime(() => {
      const { symbols } = libc();
      if (this.#segmentFd >= 0) symbols.close(this.#segmentFd);
      symbols.close(lockFd);
      symbols.close(dirFd);
    });
  }

  /**
   * Opens the log in directory `path`, creating it (mode 0700 by default) unless
   * `create` is false. Refuses symbolic links, a directory or files of another user,
   * and permission bits beyond `mode`. A path that is not a directory is an
   * `ErrnoError` with code `ENOTDIR`; a missing one without `create` is `NotFoundError`.
   *
   * @example Options
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path, { sync: "batch", segmentSize: 1 << 20 });
   * assert.equal(log.path, path);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static open(path: string, options: FileLogOpenOptions = {}): FileLog {
    validatePath(path, WHAT);
    const checked = validateOptions<FileLogOpenOptions>(options, WHAT);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const sync = checked.sync ?? "none";
    if (!SYNC_POLICIES.includes(sync)) {
      throw new TypeError(`Invalid ${WHAT} sync policy: expected "none", "record" or "batch"`);
    }
    const maxRecordSize = validateInteger(
      checked.maxRecordSize ?? DEFAULT_MAX_RECORD_SIZE,
      "max record size",
      1,
      MAX_RECORD_SIZE_LIMIT,
    );
    const segmentSize = validateInteger(
      checked.segmentSize ?? DEFAULT_SEGMENT_SIZE,
      "segment size",
      1,
    );
    const maxSegments = checked.maxSegments === undefined
      ? Infinity
      : validateInteger(checked.maxSegments, "max segments", 2);
    const { symbols } = libc();
    const dirMode = directoryMode(mode);
    if (checked.create ?? true) {
      const made = symbols.mkdirat(AT_FDCWD, cString(path), dirMode);
      if (made !== 0 && lastErrno() !== ERRNO.EEXIST) {
        throw errnoError(lastErrno(), "mkdir", { objectName: path });
      }
    }
    const dirFd = openNoFollow(AT_FDCWD, path, C.O_RDONLY | C.O_DIRECTORY, 0);
    let lockFd = -1;
    try {
      checkOwnership(dirFd, path, C.S_IFDIR, dirMode, WHAT);
      const made = symbols.mkdirat(dirFd, cString(CURSOR_DIRECTORY), dirMode);
      if (made !== 0 && lastErrno() !== ERRNO.EEXIST) {
        throw errnoError(lastErrno(), "mkdir", { objectName: `${path}/${CURSOR_DIRECTORY}` });
      }
      const cursors = openNoFollow(dirFd, CURSOR_DIRECTORY, C.O_RDONLY | C.O_DIRECTORY, 0, path);
      try {
        checkOwnership(cursors, `${path}/${CURSOR_DIRECTORY}`, C.S_IFDIR, dirMode, WHAT);
      } finally {
        symbols.close(cursors);
      }
      lockFd = openNoFollow(dirFd, LOCK_FILE, C.O_RDWR | C.O_CREAT, mode, `${path}/${LOCK_FILE}`);
      checkOwnership(lockFd, `${path}/${LOCK_FILE}`, C.S_IFREG, mode, WHAT);
    } catch (error) {
      if (lockFd >= 0) symbols.close(lockFd);
      symbols.close(dirFd);
      throw error;
    }
    return new FileLog(path, dirFd, lockFd, mode, {
      sync,
      segmentSize,
      maxSegments,
      maxRecordSize,
    });
  }

  /**
   * Removes the log directory at `path` with its segments, lock file and cursors. Fails
   * (code `ENOTEMPTY`) if the directory holds other files. Handles still open keep
   * working on the removed files.
   *
   * @example
   * ```ts
   * import { FileLog, NotFoundError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * FileLog.open(path).close();
   * FileLog.remove(path);
   * assert.throws(() => FileLog.open(path, { create: false }), NotFoundError);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static remove(path: string): void {
    validatePath(path, WHAT);
    const { symbols } = libc();
    const dirFd = openNoFollow(AT_FDCWD, path, C.O_RDONLY | C.O_DIRECTORY, 0);
    try {
      for (const name of listDirectory(dirFd, path)) {
        if (name === CURSOR_DIRECTORY) {
          const cursors = openNoFollow(dirFd, name, C.O_RDONLY | C.O_DIRECTORY, 0, path);
          try {
            for (const cursor of listDirectory(cursors, path)) {
              check("unlinkat", symbols.unlinkat(cursors, cString(cursor), 0), path);
            }
          } finally {
            symbols.close(cursors);
          }
          check("unlinkat", symbols.unlinkat(dirFd, cString(name), C.AT_REMOVEDIR), path);
        } else if (name === LOCK_FILE || parseSegmentName(name) !== undefined) {
          check("unlinkat", symbols.unlinkat(dirFd, cString(name), 0), path);
        }
      }
    } finally {
      symbols.close(dirFd);
    }
    check("unlinkat", symbols.unlinkat(AT_FDCWD, cString(path), C.AT_REMOVEDIR), path);
  }

  /** The log directory's path. */
  get path(): string {
    return this.#path;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** The largest record this handle writes or reads. */
  get maxRecordSize(): number {
    return this.#maxRecordSize;
  }

  /**
   * Appends one record and resolves with its sequence number once it is written (and,
   * by the sync policy, on disk). Waits for other appenders without blocking the event
   * loop; `timeout` and `signal` bound that wait (`TimedOutError`, the abort reason).
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * const sequence = await log.append(new Uint8Array([1, 2, 3]), { timeout: 1000 });
   * assert.equal(sequence, 0);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  append(data: Uint8Array, options: WaitOptions = {}): Promise<number> {
    return this.appendBatch([data], options);
  }

  /**
   * Appends several records in one write under one lock (consecutive sequence numbers,
   * never interleaved with other appenders); resolves with the first sequence number.
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * const records = ["a", "b", "c"].map((s) => new TextEncoder().encode(s));
   * assert.equal(await log.appendBatch(records), 0);
   * assert.equal(await log.append(new Uint8Array(1)), 3);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  async appendBatch(records: readonly Uint8Array[], options: WaitOptions = {}): Promise<number> {
    this.#validateRecords(records);
    const waitOptions = validateWaitOptions(options);
    this.#assertOpen("append to");
    const endTurn = await this.#turns.take(
      waitOptions,
      (ms) => timedOutError("append", WHAT, this.#path, ms),
    );
    this.#lifetime.pin();
    try {
      this.#assertOpen("append to");
      await waitFor(
        pollingWaitable(
          () => trySetOfdLock(this.#lockFd, "exclusive", 0, 1, this.#path) ? true : PENDING,
          this.#lifetime,
          () => closedError("append", WHAT, this.#path),
          (ms) => timedOutError("append", WHAT, this.#path, ms),
        ),
        waitOptions,
      );
      try {
        this.#checkLockFileKept();
        return await this.#appendLocked(records);
      } finally {
        trySetOfdLock(this.#lockFd, "unlock", 0, 1, this.#path);
      }
    } finally {
      this.#lifetime.unpin();
      endTurn();
    }
  }

  // The lock is held on the lock file this handle opened. If that file was removed, a
  // handle opened since locks a new one, and both would append at once: this one stops.
  #checkLockFileKept(): void {
    if (fileStatus(this.#lockFd, this.#path).links !== 0) return;
    throw new ErrnoError(ERRNO.ESTALE, "append", {
      objectName: this.#path,
      message: `The lock file of file log "${this.#path}" was removed while this handle had ` +
        `it open: appends through this handle would not exclude newer ones; open the log again`,
    });
  }

  /**
   * Appends one record if no other appender holds the log at this moment; resolves with
   * its sequence number, or `undefined` without writing anything.
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * assert.equal(await log.tryAppend(new Uint8Array(8)), 0);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  async tryAppend(data: Uint8Array): Promise<number | undefined> {
    this.#validateRecords([data]);
    this.#assertOpen("append to");
    if (this.#turns.busy) return undefined;
    const endTurn = await this.#turns.take({}, () => new Error("unreachable"));
    this.#lifetime.pin();
    try {
      if (!trySetOfdLock(this.#lockFd, "exclusive", 0, 1, this.#path)) return undefined;
      try {
        this.#checkLockFileKept();
        return await this.#appendLocked([data]);
      } finally {
        trySetOfdLock(this.#lockFd, "unlock", 0, 1, this.#path);
      }
    } finally {
      this.#lifetime.unpin();
      endTurn();
    }
  }

  /**
   * Makes a reader of this log (see {@link FileLogReader}). It has its own descriptors
   * and outlives this handle.
   *
   * @example A named cursor resumes where the last reader stopped
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * await log.appendBatch([new Uint8Array([1]), new Uint8Array([2])]);
   * {
   *   using first = log.reader({ cursor: "worker" });
   *   assert.equal((await first.read()).sequence, 0);
   * }
   * using second = log.reader({ cursor: "worker" });
   * assert.equal((await second.read()).sequence, 1);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  reader(options: FileLogReaderOptions = {}): FileLogReader {
    this.#assertOpen("read");
    return new FileLogReader(READER_KEY, this.#path, this.#dirFd, {
      mode: this.#mode,
      maxRecordSize: this.#maxRecordSize,
    }, options);
  }

  /**
   * Removes the named cursor `name`, so that it no longer holds old segments back.
   * Fails with code `EBUSY` while a reader uses it, `NotFoundError` if there is none.
   *
   * @example
   * ```ts
   * import { FileLog } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/log`;
   * using log = FileLog.open(path);
   * log.reader({ cursor: "audit" }).close();
   * assert.deepEqual(log.cursors(), ["audit"]);
   * log.removeCursor("audit");
   * assert.deepEqual(log.cursors(), []);
   * FileLog.remove(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  removeCursor(name: string): void {
    this.#assertOpen("remove a cursor of");
    validateCursorName(name);
    const { symbols } = libc();
    const label = `${this.#path}/${CURSOR_DIRECTORY}/${name}`;
    const cursors = openNoFollow(this.#dirFd, CURSOR_DIRECTORY, C.O_RDONLY | C.O_DIRECTORY, 0);
    try {
      const fd = openNoFollow(cursors, name, C.O_RDWR, 0, label);
      try {
        if (!trySetOfdLock(fd, "exclusive", 0, 0, label)) {
          throw new ErrnoError(ERRNO.EBUSY, "unlink", {
            objectName: label,
            message: `Cursor "${name}" of file log "${this.#path}" is in use by a reader`,
          });
        }
        check("unlinkat", symbols.unlinkat(cursors, cString(name), 0), label);
      } finally {
        symbols.close(fd);
      }
    } finally {
      symbols.close(cursors);
    }
  }

  /** Names of the log's named cursors. */
  cursors(): string[] {
    this.#assertOpen("list the cursors of");
    const cursors = openNoFollow(this.#dirFd, CURSOR_DIRECTORY, C.O_RDONLY | C.O_DIRECTORY, 0);
    try {
      return listDirectory(cursors, this.#path).sort();
    } finally {
      libc().symbols.close(cursors);
    }
  }

  /** Closes this handle (readers made from it stay open). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as {@link FileLog.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #validateRecords(records: readonly Uint8Array[]): void {
    if (!Array.isArray(records) || records.length === 0) {
      throw new TypeError("Invalid records: expected a non-empty array of Uint8Array");
    }
    let total = 0;
    for (const record of records) {
      if (!(record instanceof Uint8Array)) {
        throw new TypeError("Invalid record: expected a Uint8Array");
      }
      if (record.length > this.#maxRecordSize) {
        throw new RangeError(
          `Invalid record of ${record.length} bytes: the log's maximum record size is ` +
            this.#maxRecordSize,
        );
      }
      total += HEADER_SIZE + record.length;
    }
    if (total > 2 ** 30) throw new RangeError(`Invalid batch of ${total} bytes: at most 1 GiB`);
  }

  // Under the lock: find the end of the log, repairing a torn tail, then write.
  async #appendLocked(records: readonly Uint8Array[]): Promise<number> {
    await this.#catchUp();
    const bytes = encodeRecords(records, this.#next);
    await this.#rotateIfFull(bytes.length);
    const first = this.#next;
    const cut = testHooks.cutAppend?.(bytes.length);
    if (cut !== undefined) {
      pwriteFully(this.#segmentFd, bytes.subarray(0, cut), this.#tail, this.#path);
      libc().symbols.raise(SIGNALS.SIGKILL);
    }
    const name = this.#segmentPath();
    try {
      if (this.#sync === "record" && records.length > 1) {
        let at = 0;
        for (const record of records) {
          const length = HEADER_SIZE + record.length;
          pwriteFully(this.#segmentFd, bytes.subarray(at, at + length), this.#tail + at, name);
          await syncToDisk(this.#segmentFd, name);
          at += length;
        }
      } else {
        pwriteFully(this.#segmentFd, bytes, this.#tail, name);
        if (this.#sync !== "none") await syncToDisk(this.#segmentFd, name);
      }
    } catch (error) {
      // A full disk, an I/O error: records already whole in the file may have been read
      // (and synced), so they stay, committed; only a partial record is cut off.
      this.#keepWholeRecords(records.length, name);
      throw error;
    }
    this.#tail += bytes.length;
    this.#next += records.length;
    return first;
  }

  // After a failed append: counts the whole records it wrote from #tail on and cuts what
  // follows them.
  #keepWholeRecords(count: number, name: string): void {
    const size = fileSize(this.#segmentFd, this.#path);
    let end = this.#tail;
    let whole = 0;
    while (whole < count) {
      const scanned = readRecordAt(
        this.#segmentFd,
        end,
        this.#next + whole,
        size,
        this.#maxRecordSize,
        name,
      );
      if (scanned === undefined || typeof scanned === "string") break;
      end = scanned.end;
      whole++;
    }
    libc().symbols.ftruncate(this.#segmentFd, BigInt(end));
    this.#tail = end;
    this.#next += whole;
  }

  #segmentPath(): string {
    return `${this.#path}/${segmentName(this.#segmentFirst)}`;
  }

  // Follows what other appenders wrote since this handle last held the lock: new records,
  // new segments; truncates a partial record left by an appender that died.
  async #catchUp(): Promise<void> {
    const { symbols } = libc();
    if (this.#segmentFd < 0 || fileStatus(this.#segmentFd, this.#path).links === 0) {
      // First append, or the segment we knew was removed: start at the newest one.
      if (this.#segmentFd >= 0) symbols.close(this.#segmentFd);
      this.#segmentFd = -1;
      const segments = listSegments(this.#dirFd, this.#path);
      const newest = segments.at(-1) ?? 0;
      // Checked before it is kept: a refused file is never used by a later call.
      this.#segmentFd = checkedOrClosed(
        segments.length === 0
          ? this.#createSegment(0)
          : openNoFollow(this.#dirFd, segmentName(newest), C.O_RDWR, 0, this.#path),
        `${this.#path}/${segmentName(newest)}`,
        C.S_IFREG,
        this.#mode,
        WHAT,
      );
      this.#segmentFirst = newest;
      this.#tail = 0;
      this.#next = newest;
    }
    while (true) {
      const size = fileSize(this.#segmentFd, this.#path);
      let sinceYield = 0;
      while (this.#tail < size) {
        // A long scan (a new handle on a large segment) must not hold the event loop:
        // yield now and then; this handle's lock and turn keep others out meanwhile.
        if (sinceYield > SCAN_BYTES_PER_TURN) {
          sinceYield = 0;
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        const before = this.#tail;
        // Other handles may allow longer records than this one: an appender accepts any
        // record within the format's limit (its header checksum vouches for the length),
        // so no handle's setting can stop the others from appending.
        const scanned = readRecordAt(
          this.#segmentFd,
          this.#tail,
          this.#next,
          size,
          MAX_RECORD_SIZE_LIMIT,
          this.#segmentPath(),
        );
        if (scanned === undefined) {
          // A partial record: its appender died holding the lock we now hold.
          check("ftruncate", symbols.ftruncate(this.#segmentFd, BigInt(this.#tail)), this.#path);
          break;
        }
        if (typeof scanned === "string") throw scanError(this.#segmentPath(), this.#tail, scanned);
        this.#tail = scanned.end;
        sinceYield += this.#tail - before;
        this.#next++;
      }
      // A segment is named by its first record: an empty one cannot have a successor.
      if (this.#next === this.#segmentFirst) return;
      const newer = tryOpenSegment(this.#dirFd, this.#next, C.O_RDWR, this.#path);
      if (newer < 0) return;
      const name = `${this.#path}/${segmentName(this.#next)}`;
      checkedOrClosed(newer, name, C.S_IFREG, this.#mode, WHAT);
      symbols.close(this.#segmentFd);
      this.#segmentFd = newer;
      this.#segmentFirst = this.#next;
      this.#tail = 0;
    }
  }

  #createSegment(first: number): number {
    return openNoFollow(
      this.#dirFd,
      segmentName(first),
      C.O_RDWR | C.O_CREAT | C.O_EXCL,
      this.#mode,
      `${this.#path}/${segmentName(first)}`,
    );
  }

  async #rotateIfFull(bytes: number): Promise<void> {
    if (this.#tail === 0 || this.#tail + bytes <= this.#segmentSize) return;
    const segments = this.#retireSegments();
    if (segments >= this.#maxSegments) {
      throw new ErrnoError(ERRNO.ENOSPC, "append", {
        objectName: this.#path,
        message: `File log "${this.#path}" is full: ${segments} segments, the limit, and ` +
          `a named cursor is still in the oldest`,
      });
    }
    const fd = this.#createSegment(this.#next);
    if (this.#sync !== "none") await syncToDisk(this.#dirFd, this.#path);
    libc().symbols.close(this.#segmentFd);
    this.#segmentFd = fd;
    this.#segmentFirst = this.#next;
    this.#tail = 0;
  }

  // Removes the segments every named cursor is past; returns how many remain.
  #retireSegments(): number {
    const { symbols } = libc();
    const segments = listSegments(this.#dirFd, this.#path);
    const cursors = openNoFollow(this.#dirFd, CURSOR_DIRECTORY, C.O_RDONLY | C.O_DIRECTORY, 0);
    let oldestCursor = Infinity;
    try {
      for (const name of listDirectory(cursors, this.#path)) {
        // An unreadable or corrupted cursor keeps everything (0).
        oldestCursor = Math.min(oldestCursor, readCursorFile(cursors, name) ?? 0);
      }
    } finally {
      symbols.close(cursors);
    }
    if (oldestCursor === Infinity) return segments.length;
    let removed = 0;
    while (removed + 1 < segments.length && segments[removed + 1] <= oldestCursor) {
      const name = segmentName(segments[removed]);
      check("unlinkat", symbols.unlinkat(this.#dirFd, cString(name), 0), this.#path);
      removed++;
    }
    return segments.length - removed;
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#path);
  }
}

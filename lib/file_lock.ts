/**
 * Locks on files: whole-file and byte-range, shared and exclusive, held by an open file
 * description (fcntl(2) `F_OFD_SETLK`). Unlike classic POSIX record locks they are not
 * per process: two {@link FileLock} handles in one process conflict like two processes,
 * and closing one handle never drops the locks of another. The kernel releases them
 * when the last descriptor of the open file description closes, so a process that dies
 * (even by SIGKILL) releases every lock it held.
 *
 * @module
 */
import { C } from "../ffi/constants.ts";
import { check, closedError, timedOutError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import {
  AT_FDCWD,
  checkOwnership,
  type LockConflict,
  type LockKind,
  ofdLockConflict,
  openNoFollow,
  pollingWaitable,
  trySetOfdLock,
  validatePath,
} from "./_file.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  cString,
  DEFAULT_MODE,
  validateInteger,
  validateMode,
  validateOptions,
} from "./_validate.ts";
import { PENDING, waitFor, type WaitOptions } from "./_wait.ts";

export type { LockConflict };

/** Options of {@link FileLock.open}. */
export interface FileLockOpenOptions {
  /** Create the file if it does not exist. Default: false. */
  create?: boolean;
  /**
   * Permission bits when created (subject to the umask), and the most an existing file
   * may grant: a file with other bits is refused. Default: `0o600`.
   */
  mode?: number;
}

/** A byte range of a file; the default is the whole file. */
export interface LockRange {
  /** First byte. Default: 0. */
  start?: number;
  /** Number of bytes; 0 (the default) means from `start` to the end of the file, however large. */
  length?: number;
  /** Take a shared (read) lock instead of an exclusive (write) one. Default: false. */
  shared?: boolean;
}

/** Options of {@link FileLock.lock}. */
export interface FileLockOptions extends LockRange, WaitOptions {}

/** A held lock: release it once, by `release()` or by leaving a `using` block. */
export interface FileLockGuard extends Disposable {
  /** Whether the lock is shared. */
  readonly shared: boolean;
  /** First byte of the range. */
  readonly start: number;
  /** Length of the range (0: to the end of the file). */
  readonly length: number;
  /** Releases the range. Calling it again does nothing. */
  release(): void;
}

const WHAT = "file lock";
function validateRange(options: LockRange): Required<LockRange> {
  const start = validateInteger(options.start ?? 0, "lock start", 0);
  const length = validateInteger(options.length ?? 0, "lock length", 0);
  const shared = options.shared ?? false;
  if (typeof shared !== "boolean") throw new TypeError("Invalid lock shared: expected a boolean");
  return { start, length, shared };
}

/**
 * An open file used for locks. Each handle is its own open file description: locks of
 * two handles conflict even inside one process. Locks of one handle on overlapping
 * ranges merge (as POSIX locks do): releasing one guard unlocks its whole range for this
 * handle.
 *
 * @example Exclusive and shared locks
 * ```ts
 * import { FileLock } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * const path = `${dir}/lock`;
 * using a = FileLock.open(path, { create: true });
 * using b = FileLock.open(path);
 * {
 *   using _held = await a.lock({ timeout: 1000 });
 *   assert.equal(b.tryLock(), undefined); // another handle: it conflicts
 * }
 * using r1 = a.tryLock({ shared: true });
 * using r2 = b.tryLock({ shared: true });
 * assert.ok(r1 && r2); // shared locks coexist
 * FileLock.unlink(path);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class FileLock implements Disposable {
  readonly #fd: number;
  readonly #path: string;
  readonly #lifetime: Lifetime;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.#path = path;
    this.#lifetime = new Lifetime(() => {
      libc().symbols.close(fd);
    });
  }

  /**
   * Opens (or with `create`, creates) the regular file at `path` for locking. Refuses
   * symbolic links, files of another user and files with permission bits beyond `mode`.
   *
   * @example Open, creating the file
   * ```ts
   * import { FileLock } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/lock`;
   * using lock = FileLock.open(path, { create: true });
   * assert.equal(lock.path, path);
   * FileLock.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static open(path: string, options: FileLockOpenOptions = {}): FileLock {
    validatePath(path, WHAT);
    const checked = validateOptions<FileLockOpenOptions>(options, WHAT);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const flags = C.O_RDWR | (checked.create ? C.O_CREAT : 0);
    const fd = openNoFollow(AT_FDCWD, path, flags, mode);
    try {
      checkOwnership(fd, path, C.S_IFREG, mode, WHAT);
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    return new FileLock(fd, path);
  }

  /**
   * Removes the file at `path`. Handles that have it open keep their locks.
   *
   * @example
   * ```ts
   * import { FileLock, NotFoundError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/lock`;
   * FileLock.open(path, { create: true }).close();
   * FileLock.unlink(path);
   * assert.throws(() => FileLock.unlink(path), NotFoundError);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static unlink(path: string): void {
    validatePath(path, WHAT);
    check("unlink", libc().symbols.unlink(cString(path)), path);
  }

  /** The file's path. */
  get path(): string {
    return this.#path;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * Takes the range if no other open file description holds a conflicting lock;
   * returns its guard, or `undefined`.
   *
   * @example
   * ```ts
   * import { FileLock } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/lock`;
   * using a = FileLock.open(path, { create: true });
   * using b = FileLock.open(path);
   * using _first = a.tryLock({ start: 0, length: 10 });
   * assert.ok(b.tryLock({ start: 10, length: 10 })); // disjoint ranges do not conflict
   * assert.equal(b.tryLock({ start: 5, length: 10 }), undefined);
   * FileLock.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  tryLock(range: LockRange = {}): FileLockGuard | undefined {
    const checked = validateRange(validateOptions<LockRange>(range, WHAT));
    this.#assertOpen("lock");
    return this.#tryTake(checked);
  }

  /**
   * Waits for the range and returns its guard. The wait never blocks the event loop:
   * non-waiting attempts with short sleeps off the main thread between them. Rejects
   * with `TimedOutError`, the signal's reason on abort, or `ClosedError` on `close()`.
   *
   * @example Waiting with a timeout
   * ```ts
   * import { FileLock, TimedOutError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/lock`;
   * using a = FileLock.open(path, { create: true });
   * using b = FileLock.open(path);
   * using _held = await a.lock();
   * await assert.rejects(b.lock({ timeout: 20 }), TimedOutError);
   * FileLock.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  lock(options: FileLockOptions = {}): Promise<FileLockGuard> {
    const checked = validateOptions<FileLockOptions>(options, WHAT);
    const range = validateRange(checked);
    this.#assertOpen("lock");
    const waitable = pollingWaitable(
      () => this.#tryTake(range) ?? PENDING,
      this.#lifetime,
      () => closedError("lock", WHAT, this.#path),
      (ms) => timedOutError("lock", WHAT, this.#path, ms),
    );
    return waitFor(waitable, { timeout: checked.timeout, signal: checked.signal });
  }

  /**
   * The lock of another open file description that would block taking `range` now, or
   * `undefined` if there is none (F_OFD_GETLK). For diagnostics: the answer can change
   * right after.
   *
   * @example
   * ```ts
   * import { FileLock } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/lock`;
   * using a = FileLock.open(path, { create: true });
   * using b = FileLock.open(path);
   * using _read = a.tryLock({ shared: true });
   * assert.equal(b.conflict({ shared: true }), undefined);
   * assert.equal(b.conflict()?.shared, true);
   * FileLock.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  conflict(range: LockRange = {}): LockConflict | undefined {
    const { start, length, shared } = validateRange(validateOptions<LockRange>(range, WHAT));
    this.#assertOpen("test a lock on");
    return ofdLockConflict(this.#fd, shared ? "shared" : "exclusive", start, length, this.#path);
  }

  /** Closes the file; the kernel releases every lock of this handle. Idempotent. */
  close(): void {
    if (this.#lifetime.closed) return;
    this.#lifetime.close();
  }

  /** Same as {@link FileLock.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #tryTake(range: Required<LockRange>): FileLockGuard | undefined {
    const { start, length, shared } = range;
    const kind: LockKind = shared ? "shared" : "exclusive";
    if (!trySetOfdLock(this.#fd, kind, start, length, this.#path)) return undefined;
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      if (!this.#lifetime.closed) trySetOfdLock(this.#fd, "unlock", start, length, this.#path);
    };
    return { shared, start, length, release, [Symbol.dispose]: release };
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#path);
  }
}

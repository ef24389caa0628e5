/**
 * Named pipes (FIFOs): a pipe with a name in the file system, so that unrelated processes
 * can use it (mkfifo(3)). Opening one end waits until the other end is opened too; that
 * wait runs off the main thread and can be cancelled.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import {
  check,
  errnoError,
  lastErrno,
  NotAFifoError,
  PermissionDeniedError,
  timedOutError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { forgetEndpoint, recordEndpoint } from "./_endpoints.ts";
import {
  checkOwnership,
  effectiveUid,
  fileStatus,
  type Ownership,
  type OwnershipOptions,
  validateOwnership,
} from "./_owner.ts";
import { cString, DEFAULT_MODE, describe, validateMode, validateOptions } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import { PipeReader, PipeWriter } from "./pipe.ts";

/** Options of {@link Fifo.create}. */
export interface FifoCreateOptions {
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/**
 * Options of {@link Fifo.openReader} and {@link Fifo.openWriter}: how long to wait for
 * the peer, and what to accept of the FIFO's owner and mode. By default the FIFO must
 * belong to this process's effective uid and give no group or other access
 * (`PermissionDeniedError` otherwise): whoever else can open it can read our messages
 * or forge theirs.
 */
export interface FifoOpenOptions extends WaitOptions, OwnershipOptions {}

/** Options of {@link Fifo.unlink}: by default only a FIFO of this user is removed. */
export type FifoUnlinkOptions = Pick<OwnershipOptions, "allowOtherOwners">;

const WHAT = "FIFO";

function validatePath(path: unknown): string {
  if (typeof path !== "string") {
    throw new TypeError(`Invalid FIFO path: expected a string, got ${describe(path)}`);
  }
  if (path.length === 0) throw new TypeError("Invalid FIFO path: it is empty");
  if (path.includes("\0")) throw new TypeError("Invalid FIFO path: it contains NUL");
  if (new TextEncoder().encode(path).length >= C.PATH_MAX) {
    throw new RangeError(`Invalid FIFO path: longer than ${C.PATH_MAX - 1} bytes`);
  }
  return path;
}

// NotAFifoError unless `mode` (st_mode) is a FIFO's.
function assertFifo(mode: number, path: string, syscall: string): void {
  if ((mode & C.S_IFMT) !== C.S_IFIFO) {
    const kind = (mode & C.S_IFMT) === C.S_IFREG
      ? "a regular file"
      : (mode & C.S_IFMT) === C.S_IFLNK
      ? "a symbolic link (never followed)"
      : "not a FIFO";
    throw new NotAFifoError(ERRNO.EINVAL, syscall, {
      objectName: path,
      message: `Cannot ${syscall} "${path}" as a FIFO: it is ${kind}`,
    });
  }
}

// Opens what is at `path` itself (a link there is refused, not followed) as an O_PATH
// descriptor, and checks through it that it is a FIFO with an owner and mode we accept.
// Everything after goes through this descriptor: the path is looked up once.
function openChecked(path: string, ownership: Ownership): number {
  const { symbols } = libc();
  const fd = symbols.open(cString(path), C.O_PATH | C.O_NOFOLLOW | C.O_CLOEXEC, 0);
  if (fd < 0) throw errnoError(lastErrno(), "open", { objectName: path });
  try {
    // O_PATH|O_NOFOLLOW opens a link itself rather than failing: its type tells.
    const status = fileStatus(fd, path);
    assertFifo(status.mode, path, "open");
    checkOwnership([status.uid], status.mode, ownership, WHAT, path, "open");
    return fd;
  } catch (error) {
    symbols.close(fd);
    throw error;
  }
}

/**
 * Named pipes: create, open either end, remove.
 *
 * @example A writer and a reader meet at a FIFO
 * ```ts
 * import { Fifo } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const directory = Deno.makeTempDirSync();
 * const path = `${directory}/requests`;
 * Fifo.create(path);
 * try {
 *   const [reader, writer] = await Promise.all([
 *     Fifo.openReader(path, { timeout: 5000 }),
 *     Fifo.openWriter(path, { timeout: 5000 }),
 *   ]);
 *   using _r = reader;
 *   await writer.write(new TextEncoder().encode("hello"));
 *   writer.close();
 *   const buffer = new Uint8Array(16);
 *   const n = await reader.read(buffer);
 *   assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "hello");
 * } finally {
 *   Fifo.unlink(path);
 *   Deno.removeSync(directory);
 * }
 * ```
 */
export class Fifo {
  private constructor() {}

  /**
   * Creates a FIFO at `path` (mode 0600 by default). Fails with `AlreadyExistsError` if
   * anything exists there, and `NotFoundError` if its directory does not.
   */
  static create(path: string, options: FifoCreateOptions = {}): void {
    validatePath(path);
    const checked = validateOptions<FifoCreateOptions>(options, WHAT);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    check("mkfifo", libc().symbols.mkfifo(cString(path), mode), path);
    recordEndpoint("fifo", path);
  }

  /**
   * Removes the FIFO at `path`: only a FIFO (never a link or anything else put there,
   * `NotAFifoError`), and only one this user owns unless `allowOtherOwners`
   * (`PermissionDeniedError`). The entry is checked and removed relative to its opened
   * directory, so a path component swapped meanwhile cannot redirect the removal.
   */
  static unlink(path: string, options: FifoUnlinkOptions = {}): void {
    validatePath(path);
    const { allowOtherOwners } = validateOwnership(
      validateOptions<FifoUnlinkOptions>(options, WHAT),
    );
    const { symbols } = libc();
    const slash = path.lastIndexOf("/");
    const directory = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
    const entry = cString(path.slice(slash + 1));
    const directoryFd = check(
      "open",
      symbols.open(cString(directory), C.O_PATH | C.O_DIRECTORY | C.O_CLOEXEC, 0),
      path,
    );
    try {
      const stat = new Uint8Array(C.SIZEOF_STAT);
      check("fstatat", symbols.fstatat(directoryFd, entry, stat, C.AT_SYMLINK_NOFOLLOW), path);
      const view = new DataView(stat.buffer);
      assertFifo(view.getUint32(C.STAT_OFFSET_MODE, true), path, "unlink");
      const owner = view.getUint32(C.STAT_OFFSET_UID, true);
      if (owner !== effectiveUid() && !allowOtherOwners) {
        throw new PermissionDeniedError(ERRNO.EACCES, "unlink", {
          objectName: path,
          message: `Refusing to remove FIFO "${path}": it belongs to uid ${owner}, not to ` +
            `this process's uid ${effectiveUid()} (pass allowOtherOwners: true to remove it)`,
        });
      }
      check("unlinkat", symbols.unlinkat(directoryFd, entry, 0), path);
      forgetEndpoint(path, view.getBigUint64(C.STAT_OFFSET_INO, true));
    } finally {
      symbols.close(directoryFd);
    }
  }

  /**
   * Opens the read end, waiting until some process opens the write end. Rejects with
   * `TimedOutError` after `timeout` ms, with the abort reason on abort, `NotFoundError`
   * when there is nothing at `path`, `NotAFifoError` when it is not a FIFO (a symbolic
   * link there is not followed), and `PermissionDeniedError` when another user owns it
   * or its mode gives group/other access beyond `allowModes` (see {@link FifoOpenOptions}).
   */
  static async openReader(path: string, options: FifoOpenOptions = {}): Promise<PipeReader> {
    const fd = await openEnd(path, C.O_RDONLY, options);
    return new PipeReader(fd, path, WHAT);
  }

  /** Opens the write end, waiting until some process opens the read end (as above). */
  static async openWriter(path: string, options: FifoOpenOptions = {}): Promise<PipeWriter> {
    const fd = await openEnd(path, C.O_WRONLY, options);
    return new PipeWriter(fd, path, WHAT);
  }
}

// open(2) of a FIFO end blocks until the other end is open. It runs on Deno's thread
// pool; to cancel it (timeout, abort) we open the other end ourselves for a moment,
// which lets the pending open return, and close both. Both opens go through an O_PATH
// descriptor (/proc/self/fd/N), so they reach the same FIFO even if its path is
// unlinked or replaced meanwhile; a cancellation through the path could then never
// finish.
async function openEnd(
  path: string,
  direction: number,
  options: FifoOpenOptions,
): Promise<number> {
  validatePath(path);
  const { timeout, signal } = validateWaitOptions(options);
  const ownership = validateOwnership(validateOptions<FifoOpenOptions>(options, WHAT));
  signal?.throwIfAborted();
  const { symbols } = libc();
  const pathFd = openChecked(path, ownership);
  try {
    return await openThrough(pathFd, path, direction, timeout, signal);
  } finally {
    symbols.close(pathFd);
  }
}

async function openThrough(
  pathFd: number,
  path: string,
  direction: number,
  timeout: number | undefined,
  signal: AbortSignal | undefined,
): Promise<number> {
  const { symbols } = libc();
  const name = cString(`/proc/self/fd/${pathFd}`);
  const flags = direction | C.O_CLOEXEC;
  if (direction === C.O_WRONLY) {
    // With a reader already there, a non-blocking open succeeds at once (else ENXIO).
    const fd = symbols.open(name, flags | C.O_NONBLOCK, 0);
    if (fd >= 0) return fd;
    if (lastErrno() !== ERRNO.ENXIO) throw errnoError(lastErrno(), "open", { objectName: path });
  }

  const opening = symbols.open_async(name, flags, 0);
  let cancelled: unknown;
  const wake = Promise.withResolvers<void>();
  const cancel = (reason: unknown) => {
    cancelled ??= reason;
    wake.resolve();
  };
  const onAbort = () => cancel(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  const timer = timeout === undefined || timeout > 2 ** 31 - 1 // (setTimeout limit: treated as none)
    ? undefined
    : setTimeout(() => cancel(timedOutError("open", WHAT, path, timeout)), timeout);
  try {
    await Promise.race([opening, wake.promise]);
    if (cancelled !== undefined) {
      // Finish the cancellation before returning: its helper descriptor must be closed
      // by then, or the next open would meet it as a peer.
      const fd = await unblock(direction);
      if (fd >= 0) symbols.close(fd);
      throw cancelled;
    }
    const fd = await opening;
    if (fd < 0) {
      // errno of the pool-thread open is lost: try again without waiting on this thread.
      const retry = symbols.open(name, flags | C.O_NONBLOCK, 0);
      if (retry >= 0) {
        symbols.close(retry);
        throw errnoError(ERRNO.EIO, "open", { objectName: path });
      }
      throw errnoError(lastErrno(), "open", { objectName: path });
    }
    return fd;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }

  // Opens the other end until the pending open returns, then closes what it opened.
  async function unblock(direction: number): Promise<number> {
    const other = direction === C.O_WRONLY ? C.O_RDONLY : C.O_WRONLY;
    let helper = -1;
    let settled = false;
    const result = opening.finally(() => settled = true);
    while (!settled) {
      // A reader's pending open needs a writer; a non-blocking writer open succeeds only
      // once the reader is really waiting (else ENXIO), so retry until it does.
      if (helper < 0) helper = symbols.open(name, other | C.O_NONBLOCK | C.O_CLOEXEC, 0);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const fd = await result;
    if (helper >= 0) symbols.close(helper);
    return fd;
  }
}

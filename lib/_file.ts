// Opening files that other processes share: path checks, O_NOFOLLOW, and the owner and
// mode checks every file-based IPC object makes on open; whole-buffer pread/pwrite.
import { C, ERRNO } from "../ffi/constants.ts";
import { check, ErrnoError, lastErrno, PermissionDeniedError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { cString, describe } from "./_validate.ts";
import { PENDING, type Pinnable, type Waitable } from "./_wait.ts";

const encoder = new TextEncoder();

/** Checks a file system path: a non-empty string without NUL, shorter than PATH_MAX. */
export function validatePath(path: unknown, what: string): string {
  if (typeof path !== "string") {
    throw new TypeError(`Invalid ${what} path: expected a string, got ${describe(path)}`);
  }
  if (path.length === 0) throw new TypeError(`Invalid ${what} path: it is empty`);
  if (path.includes("\0")) throw new TypeError(`Invalid ${what} path: it contains NUL`);
  if (encoder.encode(path).length >= C.PATH_MAX) {
    throw new RangeError(`Invalid ${what} path: longer than ${C.PATH_MAX - 1} bytes`);
  }
  return path;
}

/** What fstat(2) says about an open file. */
export interface FileStatus {
  type: number;
  permissions: number;
  uid: number;
  size: number;
  links: number;
}

const statBuffer = new Uint8Array(C.SIZEOF_STAT);
const statView = new DataView(statBuffer.buffer);

/** fstat(2) of `fd`. */
export function fileStatus(fd: number, name: string): FileStatus {
  check("fstat", libc().symbols.fstat(fd, statBuffer), name);
  const mode = statView.getUint32(C.STAT_OFFSET_MODE, true);
  return {
    type: mode & C.S_IFMT,
    permissions: mode & 0o7777,
    uid: statView.getUint32(C.STAT_OFFSET_UID, true),
    size: Number(statView.getBigInt64(C.STAT_OFFSET_SIZE, true)),
    links: Number(statView.getBigUint64(C.STAT_OFFSET_NLINK, true)),
  };
}

/** Size of the open file `fd` in bytes. */
export function fileSize(fd: number, name: string): number {
  check("fstat", libc().symbols.fstat(fd, statBuffer), name);
  return Number(statView.getBigInt64(C.STAT_OFFSET_SIZE, true));
}

/**
 * Checks that an opened file is of `type`, belongs to this user and has no permission
 * bits beyond `mode` (so a file others may write is refused unless `mode` allows them).
 */
/** {@link checkOwnership}, closing `fd` when the check fails; returns `fd`. */
export function checkedOrClosed(
  fd: number,
  name: string,
  type: number,
  mode: number,
  what: string,
): number {
  try {
    checkOwnership(fd, name, type, mode, what);
  } catch (error) {
    libc().symbols.close(fd);
    throw error;
  }
  return fd;
}

export function checkOwnership(
  fd: number,
  name: string,
  type: number,
  mode: number,
  what: string,
): FileStatus {
  const status = fileStatus(fd, name);
  if (status.type !== type) {
    const expected = type === C.S_IFDIR ? "a directory" : "a regular file";
    throw new ErrnoError(type === C.S_IFDIR ? ERRNO.ENOTDIR : ERRNO.EINVAL, "open", {
      objectName: name,
      message: `Cannot open "${name}" as a ${what}: it is not ${expected}`,
    });
  }
  const uid = libc().symbols.geteuid();
  if (status.uid !== uid) {
    throw new PermissionDeniedError(ERRNO.EPERM, "open", {
      objectName: name,
      message: `Refusing ${what} "${name}": it belongs to uid ${status.uid}, not to ${uid}`,
    });
  }
  const extra = status.permissions & ~mode & 0o7777;
  if (extra !== 0) {
    throw new PermissionDeniedError(ERRNO.EPERM, "open", {
      objectName: name,
      message: `Refusing ${what} "${name}": mode 0o${status.permissions.toString(8)} ` +
        `grants bits 0o${extra.toString(8)} beyond the allowed 0o${mode.toString(8)}`,
    });
  }
  return status;
}

/**
 * Opens `path` (relative to `dirFd`, or AT_FDCWD = -100) without following a final
 * symbolic link and without blocking on a FIFO, close-on-exec.
 */
export function openNoFollow(
  dirFd: number,
  path: string,
  flags: number,
  mode: number,
  name: string = path,
): number {
  return check(
    "openat",
    libc().symbols.openat(
      dirFd,
      cString(path),
      flags | C.O_NOFOLLOW | C.O_CLOEXEC | C.O_NONBLOCK,
      mode,
    ),
    name,
  );
}

/** The current directory for the *at(2) calls. */
export const AT_FDCWD = -100;

/** Reads up to `buffer.length` bytes at `offset`; fewer only at end of file. */
export function preadFully(fd: number, buffer: Uint8Array, offset: number, name: string): number {
  const { symbols } = libc();
  let done = 0;
  while (done < buffer.length) {
    const n = check(
      "pread",
      symbols.pread(fd, buffer.subarray(done), BigInt(buffer.length - done), BigInt(offset + done)),
      name,
    );
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Writes all of `bytes` at `offset`. */
export function pwriteFully(fd: number, bytes: Uint8Array, offset: number, name: string): void {
  const { symbols } = libc();
  for (let done = 0; done < bytes.length;) {
    done += check(
      "pwrite",
      symbols.pwrite(fd, bytes.subarray(done), BigInt(bytes.length - done), BigInt(offset + done)),
      name,
    );
  }
}

/** Kinds of open-file-description lock. */
export type LockKind = "shared" | "exclusive" | "unlock";

const flock = new Uint8Array(C.SIZEOF_FLOCK);
const flockView = new DataView(flock.buffer);

function fillFlock(kind: LockKind, start: number, length: number): void {
  flock.fill(0);
  const type = kind === "shared" ? C.F_RDLCK : kind === "exclusive" ? C.F_WRLCK : C.F_UNLCK;
  flockView.setInt16(C.FLOCK_OFFSET_TYPE, type, true);
  flockView.setInt16(C.FLOCK_OFFSET_WHENCE, C.SEEK_SET, true);
  flockView.setBigInt64(C.FLOCK_OFFSET_START, BigInt(start), true);
  flockView.setBigInt64(C.FLOCK_OFFSET_LEN, BigInt(length), true);
}

/**
 * One non-waiting F_OFD_SETLK: takes (or with "unlock" releases) bytes `start` to
 * `start + length` (`length` 0: to the end of the file, however large it grows). Returns
 * false when another open file description holds a conflicting lock.
 */
export function trySetOfdLock(
  fd: number,
  kind: LockKind,
  start: number,
  length: number,
  name: string,
): boolean {
  fillFlock(kind, start, length);
  const { symbols } = libc();
  if (symbols.fcntl_lock(fd, C.F_OFD_SETLK, flock) === 0) return true;
  const errno = lastErrno();
  if (errno === ERRNO.EAGAIN || errno === ERRNO.EACCES) return false;
  throw new ErrnoError(errno, "fcntl", { objectName: name });
}

/** A lock that conflicts with `kind` on the range, as F_OFD_GETLK reports it. */
export interface LockConflict {
  /** Whether the conflicting lock is shared (a read lock). */
  shared: boolean;
  /** Its first byte. */
  start: number;
  /** Its length in bytes; 0 means to the end of the file. */
  length: number;
}

/** F_OFD_GETLK: a lock of another open file description that would block `kind`, if any. */
export function ofdLockConflict(
  fd: number,
  kind: "shared" | "exclusive",
  start: number,
  length: number,
  name: string,
): LockConflict | undefined {
  fillFlock(kind, start, length);
  check("fcntl_lock", libc().symbols.fcntl_lock(fd, C.F_OFD_GETLK, flock), name);
  const type = flockView.getInt16(C.FLOCK_OFFSET_TYPE, true);
  if (type === C.F_UNLCK) return undefined;
  return {
    shared: type === C.F_RDLCK,
    start: Number(flockView.getBigInt64(C.FLOCK_OFFSET_START, true)),
    length: Number(flockView.getBigInt64(C.FLOCK_OFFSET_LEN, true)),
  };
}

// Polling parks for waits without a wake-up channel (file locks): waiters retry, backing
// off from 50 µs to 5 ms between attempts.
const FIRST_PARK_MS = 0.05;
const LONGEST_PARK_MS = 5;

/** A waitable that retries `attempt` after short sleeps off the main thread. */
export function pollingWaitable<T>(
  attempt: () => T | typeof PENDING,
  lifetime: Pinnable,
  closedError: () => Error,
  timedOutError: (ms: number) => Error,
): Waitable<T> {
  let parkMs = FIRST_PARK_MS;
  return {
    attempt,
    park: async (ms) => {
      const sleep = Math.min(ms, parkMs);
      parkMs = Math.min(parkMs * 2, LONGEST_PARK_MS);
      await libc().symbols.usleep_async(Math.max(1, Math.round(sleep * 1000)));
      return PENDING;
    },
    lifetime,
    closedError,
    timedOutError,
    spin: 0,
  };
}

// errno and the one checker every libc call goes through.
//
// Synchronous FFI calls run on the JS thread, so errno is read right after the call
// through a view of this thread's errno slot made once. Calls declared
// `nonblocking: true` run on a pool thread: their errno is set there and is LOST. Callers
// of those never pass their result here; they recover the cause from state instead (a
// non-waiting retry on this thread, a deadline check, the handle's closed flag).
import { C, ERRNO } from "./constants.ts";
import { libc, type LIBC_SYMBOLS } from "./libc.ts";

let errnoSlot: Int32Array | undefined;

/** Reads errno of the last synchronous libc call made on this thread. */
export function lastErrno(): number {
  if (!errnoSlot) {
    const location = libc().symbols.__errno_location()!;
    errnoSlot = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(location, 4));
  }
  return errnoSlot[0];
}

const believed = new Set<string>();

/**
 * Whether the errno of a failed `syscall` can be believed: false the first time this
 * process asks about `syscall`, true from then on. The first call of an FFI symbol in a
 * process now and then leaves errno changed (ENOENT; README, DENO_IPC_ERRNO_PROBE), and a
 * non-blocking send or receive that failed then threw in the middle of a stream (seen in
 * benchmark runs: "recvmsg failed: ENOENT"). Callers whose call is safe to repeat (a
 * failed non-blocking transfer moved nothing) make it once more when this is false: the
 * second call's errno is the real one.
 */
export function errnoBelieved(syscall: string): boolean {
  if (believed.has(syscall)) return true;
  believed.add(syscall);
  return false;
}

const codeByNumber = new Map<number, string>(
  Object.entries(ERRNO).map(([code, value]) => [value, code]),
);

/** The symbolic name of an errno value, e.g. `17` -> `"EEXIST"`. */
export function errnoCode(errno: number): string {
  const known = codeByNumber.get(errno);
  if (known) return known;
  const name = libc().symbols.strerrorname_np?.(errno);
  return name ? Deno.UnsafePointerView.getCString(name) : `E${errno}`;
}

function errnoText(errno: number): string {
  const text = libc().symbols.strerror(errno);
  return text ? Deno.UnsafePointerView.getCString(text) : `error ${errno}`;
}

/**
 * For constructors of error classes: `value` if it is a string, else a TypeError naming
 * the argument `what` (a message of a Symbol or of an object without toString would
 * otherwise fail with an error that names nothing).
 */
export function stringArgument(value: unknown, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what}: expected a string, got ${typeof value}`);
  }
  return value;
}

/** For constructors of error classes: `value` if it is a number, else a TypeError. */
export function numberArgument(value: unknown, what: string): number {
  if (typeof value !== "number") {
    throw new TypeError(`Invalid ${what}: expected a number, got ${typeof value}`);
  }
  return value;
}

/** Options of {@link ErrnoError}. */
export interface ErrnoErrorOptions {
  /** The IPC object the call was about, e.g. `"/my-shm"`. */
  objectName?: string;
  /** A message to use instead of the generated one. */
  message?: string;
  /** The error that caused this one. */
  cause?: unknown;
}

/**
 * A libc call failed. Carries the errno value, its code name (e.g. `"EEXIST"`), the
 * call and the name of the object involved. Subclasses name what callers usually catch.
 *
 * @example Catching an already-existing object
 * ```ts
 * import { AlreadyExistsError, SharedMemory } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using first = SharedMemory.create({ size: 4096 });
 * try {
 *   assert.throws(() => SharedMemory.create({ name: first.name, size: 4096 }), AlreadyExistsError);
 * } finally {
 *   first.unlink();
 * }
 * ```
 */
export class ErrnoError extends Error {
  /** The errno value, e.g. 17. */
  readonly errno: number;
  /** The errno code name, e.g. `"EEXIST"`. */
  readonly code: string;
  /** The libc call (or library operation) that failed, e.g. `"shm_open"`. */
  readonly syscall: string;
  /** The IPC object involved, when there is one. */
  readonly objectName: string | undefined;

  /** Creates an error for `errno` raised by `syscall`. */
  constructor(errno: number, syscall: string, options: ErrnoErrorOptions = {}) {
    if (typeof errno !== "number") numberArgument(errno, "errno");
    if (!Number.isInteger(errno) || errno < 0 || errno > 4095) {
      throw new RangeError(`Invalid errno ${errno}: expected an integer from 0 to 4095`);
    }
    stringArgument(syscall, "syscall (the name of the failed call)");
    if (options === null || typeof options !== "object") {
      throw new TypeError(`Invalid options: expected an object, got ${typeof options}`);
    }
    if (options.objectName !== undefined) stringArgument(options.objectName, "objectName");
    if (options.message !== undefined) stringArgument(options.message, "message");
    const code = errnoCode(errno);
    const on = options.objectName === undefined ? "" : ` on "${options.objectName}"`;
    super(
      options.message ?? `${syscall} failed${on}: ${code} (${errnoText(errno)})`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = new.target.name;
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
    this.objectName = options.objectName;
  }
}

/** The object already exists (EEXIST), e.g. on an exclusive create. */
export class AlreadyExistsError extends ErrnoError {}
/** The object does not exist (ENOENT), or the process does not (ESRCH). */
export class NotFoundError extends ErrnoError {}
/** The operation would have to wait (EAGAIN); returned by non-waiting forms. */
export class WouldBlockError extends ErrnoError {}
/** A wait ran out of time (ETIMEDOUT). */
export class TimedOutError extends ErrnoError {}
/** The caller lacks permission (EACCES, EPERM). */
export class PermissionDeniedError extends ErrnoError {}
/** A signal interrupted the call (EINTR). */
export class InterruptedError extends ErrnoError {}
/** The handle was closed (EBADF): use after `close()`. */
export class ClosedError extends ErrnoError {}
/** Every reader of the pipe or FIFO has closed it (EPIPE): nothing can be written. */
export class BrokenPipeError extends ErrnoError {}
/** The path exists but is not a FIFO (EINVAL). */
export class NotAFifoError extends ErrnoError {}
/** Nobody listens at the socket address (ECONNREFUSED). */
export class ConnectionRefusedError extends ErrnoError {}
/** The path exists but is not a socket (ENOTSOCK). */
export class NotASocketError extends ErrnoError {}
/** The message queue was removed (EIDRM), by this process or another. */
export class QueueRemovedError extends ErrnoError {}
/** The stream was ended by its producers (EPIPE): nothing more may be sent. */
export class StreamEndedError extends ErrnoError {}

/**
 * Bytes another process could write failed validation (EBADMSG): a shared-memory header or
 * record, a file's checksum, magic, length or sequence number. The bytes are never
 * returned as data, and the handle stays usable for `close()` and `unlink()`. `field`
 * names what was found wrong when it is one field.
 *
 * @example What a corrupted ring reports
 * ```ts
 * import { CorruptedError } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const error = CorruptedError.of("message ring", "/jobs", "record length", "-8");
 * assert.equal(error.field, "record length");
 * assert.equal(error.code, "EBADMSG");
 * assert.match(error.message, /message ring "\/jobs" is corrupted: record length -8/);
 * ```
 */
export class CorruptedError extends ErrnoError {
  /** The field found corrupted, e.g. `"record length"`, when it is one field. */
  readonly field: string | undefined;

  /** Creates the error (see {@link CorruptedError.of} for the usual form). */
  constructor(
    errno: number,
    syscall: string,
    options: ErrnoErrorOptions & { field?: string } = {},
  ) {
    super(errno, syscall, options);
    this.field = options.field;
  }

  /** The error for `field` of the object `objectName`, a `what` (e.g. "message ring"). */
  static of(what: string, objectName: string, field: string, detail?: string): CorruptedError {
    stringArgument(what, "what");
    stringArgument(objectName, "objectName");
    stringArgument(field, "field");
    if (detail !== undefined) stringArgument(detail, "detail");
    return new CorruptedError(ERRNO.EBADMSG, "validate", {
      objectName,
      field,
      message: `The ${what} "${objectName}" is corrupted: ${field}` +
        (detail === undefined ? "" : ` ${detail}`),
    });
  }
}

const classByErrno = new Map<number, typeof ErrnoError>([
  [ERRNO.EEXIST, AlreadyExistsError],
  [ERRNO.ENOENT, NotFoundError],
  [ERRNO.ESRCH, NotFoundError],
  [ERRNO.EAGAIN, WouldBlockError],
  [ERRNO.ETIMEDOUT, TimedOutError],
  [ERRNO.EACCES, PermissionDeniedError],
  [ERRNO.EPERM, PermissionDeniedError],
  [ERRNO.EINTR, InterruptedError],
  [ERRNO.EBADF, ClosedError],
  [ERRNO.EPIPE, BrokenPipeError],
  [ERRNO.EIDRM, QueueRemovedError],
  [ERRNO.ECONNREFUSED, ConnectionRefusedError],
  [ERRNO.ENOTSOCK, NotASocketError],
  [ERRNO.EBADMSG, CorruptedError],
]);

/** Builds the most specific {@link ErrnoError} subclass for `errno`. */
export function errnoError(
  errno: number,
  syscall: string,
  options: ErrnoErrorOptions = {},
): ErrnoError {
  const ErrorClass = classByErrno.get(errno) ?? ErrnoError;
  return new ErrorClass(errno, syscall, options);
}

/** A {@link ClosedError} for `operation` on a handle already closed. */
export function closedError(operation: string, what: string, objectName: string): ClosedError {
  return new ClosedError(ERRNO.EBADF, operation, {
    objectName,
    message: `Cannot ${operation}: ${what} "${objectName}" is closed`,
  });
}

/** A {@link StreamEndedError} for a send after the end of the stream. */
export function streamEndedError(what: string, objectName: string): StreamEndedError {
  return new StreamEndedError(ERRNO.EPIPE, "send", {
    objectName,
    message: `Cannot send: ${what} "${objectName}" has ended (its producers called end())`,
  });
}

/** A {@link TimedOutError} for a wait that ran out of time. */
export function timedOutError(
  operation: string,
  what: string,
  objectName: string,
  timeoutMs: number,
): TimedOutError {
  return new TimedOutError(ERRNO.ETIMEDOUT, operation, {
    objectName,
    message: `Timed out after ${timeoutMs} ms: ${operation} on ${what} "${objectName}"`,
  });
}

type SymbolName = keyof typeof LIBC_SYMBOLS;

/** How a libc call reports failure. */
type FailureConvention =
  | "minus-one" // returns -1 and sets errno
  | "map-failed" // returns MAP_FAILED and sets errno
  | "sem-failed" // returns SEM_FAILED and sets errno
  | "returns-errno"; // returns 0 or the error number; errno untouched

const FAILURE: Partial<Record<SymbolName, FailureConvention>> = {
  close: "minus-one",
  open: "minus-one",
  mkfifo: "minus-one",
  unlink: "minus-one",
  stat: "minus-one",
  pipe2: "minus-one",
  dup: "minus-one",
  fcntl: "minus-one",
  read: "minus-one",
  write: "minus-one",
  fstat: "minus-one",
  fstatat: "minus-one",
  unlinkat: "minus-one",
  chmod: "minus-one",
  socket: "minus-one",
  bind: "minus-one",
  listen: "minus-one",
  accept4: "minus-one",
  connect: "minus-one",
  shutdown: "minus-one",
  getsockopt: "minus-one",
  send: "minus-one",
  posix_fallocate: "returns-errno",
  clock_gettime: "minus-one",
  openat: "minus-one",
  mkdirat: "minus-one",
  pread: "minus-one",
  pwrite: "minus-one",
  ftruncate: "minus-one",
  fcntl_lock: "minus-one",
  closedir: "minus-one",
  msync: "minus-one",
  inotify_init1: "minus-one",
  inotify_add_watch: "minus-one",
  shm_open: "minus-one",
  shm_unlink: "minus-one",
  link: "minus-one",
  mmap: "map-failed",
  munmap: "minus-one",
  sem_open: "sem-failed",
  sem_close: "minus-one",
  sem_unlink: "minus-one",
  sem_init: "minus-one",
  sem_destroy: "minus-one",
  sem_post: "minus-one",
  sem_trywait: "minus-one",
  sem_getvalue: "minus-one",
  kill: "minus-one",
  ftok: "minus-one",
  msgget: "minus-one",
  msgsnd: "minus-one",
  msgrcv: "minus-one",
  msgctl: "minus-one",
  mq_open: "minus-one",
  mq_close: "minus-one",
  mq_unlink: "minus-one",
  mq_send: "minus-one",
  mq_receive: "minus-one",
  mq_getattr: "minus-one",
  raise: "minus-one",
  setpgid: "minus-one",
  getpgid: "minus-one",
  futex_wake: "minus-one",
  pidfd_open: "minus-one",
  pidfd_send_signal: "minus-one",
  socketpair: "minus-one",
  setsockopt: "minus-one",
  sendmsg: "minus-one",
  recvmsg: "minus-one",
  poll: "minus-one",
  memfd_create: "minus-one",
};

/**
 * Checks the result of a synchronous libc call by that call's failure convention and
 * throws the matching {@link ErrnoError}; returns the result otherwise. Must be called
 * right after the call, before any other libc call can overwrite errno.
 */
export function check(
  syscall: "mmap" | "sem_open",
  result: Deno.PointerValue,
  objectName?: string,
): Deno.PointerObject;
export function check(syscall: SymbolName, result: number, objectName?: string): number;
export function check(
  syscall: SymbolName,
  result: number | Deno.PointerValue,
  objectName?: string,
): number | Deno.PointerObject {
  const convention = FAILURE[syscall];
  if (convention === undefined) throw new Error(`No failure convention for ${syscall}`);
  switch (convention) {
    case "minus-one":
      if (result === -1) throw errnoError(lastErrno(), syscall, { objectName });
      return result as number;
    case "returns-errno":
      if (result !== 0) throw errnoError(result as number, syscall, { objectName });
      return 0;
    case "map-failed":
    case "sem-failed": {
      const failed = convention === "map-failed" ? C.MAP_FAILED : C.SEM_FAILED;
      const pointer = result as Deno.PointerValue;
      if (pointer === null || Deno.UnsafePointer.value(pointer) === BigInt(failed)) {
        throw errnoError(lastErrno(), syscall, { objectName });
      }
      return pointer;
    }
  }
}

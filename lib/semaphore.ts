/**
 * POSIX semaphores across processes: named semaphores (`sem_open`), unnamed
 * process-shared semaphores placed inside shared memory (`sem_init` with `pshared=1`),
 * and a mutex built on either. See sem_overview(7).
 *
 * The semaphores are glibc's `sem_t` (C programs using `sem_post`/`sem_wait` on them
 * interoperate), but posting and waiting run glibc's protocol in TypeScript, with atomics
 * and futex(2): glibc's own calls abort the process when another process has written
 * garbage over the semaphore, and these throw `CorruptedError` instead.
 *
 * Waiting never blocks the event loop: a wait first tries to take a unit on this thread
 * (spinning briefly), then sleeps on the semaphore's futex on Deno's thread pool in
 * slices of at most 100 ms, checking its timeout, AbortSignal and the handle between
 * slices.
 *
 * A wait ended by its AbortSignal or by `close()` rejects at once, but its current slice
 * goes on on the thread pool for at most 100 ms (it takes no unit). Under
 * `deno test --sanitize-ops`, let it settle before the test ends. A timeout never leaves
 * a slice behind.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import {
  check,
  closedError,
  CorruptedError,
  errnoError,
  lastErrno,
  timedOutError,
} from "../ffi/errno.ts";
import { futexWait } from "./_futex.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  checkOwnership,
  fileStatus,
  type Ownership,
  type OwnershipOptions,
  validateOwnership,
} from "./_owner.ts";
import {
  cString,
  DEFAULT_MODE,
  describe,
  randomPosixName,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";
import { PENDING, validateWaitOptions, type Waitable, waitFor, type WaitOptions } from "./_wait.ts";
import { SharedMemory } from "./shared_memory.ts";

export type { WaitOptions } from "./_wait.ts";

/** Longest named semaphore name after "/": glibc prefixes "sem." to the file name. */
const SEM_NAME_MAX = C.NAME_MAX - C.semaphoreFilePrefix.length;

// The wait protocol of one sem_t, shared by both public semaphore kinds.
//
// The sem_t lives in memory other processes can write (a shared memory region, or the
// /dev/shm file of a named semaphore). glibc's own sem_post and sem_wait abort the whole
// process (SIGABRT, "The futex facility returned an unexpected error code") when such a
// write leaves a word they pass to futex(2) invalid, and no check made before calling
// them can close the window in which a peer writes again. So this class does not call
// them: it runs glibc's protocol itself, on the same words, with atomics and futex(2)
// through syscall(2), whose errors come back as return values. C programs using
// sem_post/sem_wait on the same semaphore interoperate.
//
// glibc 2.36 on x86_64 (struct new_sem, nptl/sem_waitcommon.c): a 64-bit `data` whose
// low 32 bits are the value and high 32 bits the number of waiters, then `int private`
// (ignored here: it only selects the futex op glibc uses). A poster adds 1 to the value,
// then wakes one sleeper if the waiter count is not 0; a waiter counts itself in, takes
// a unit if the value is above 0, else sleeps on the value word while it is 0.
const SEM_VALUE = 0; // Int32 index of the value word
const SEM_WAITERS = 1; // Int32 index of the waiter count

class SemaphoreCore implements Waitable<true> {
  readonly lifetime: Lifetime;
  readonly spin: number;
  readonly #pointer: Deno.PointerObject;
  readonly #words: Int32Array;
  readonly #what: string;
  readonly #name: string;

  constructor(pointer: Deno.PointerObject, what: string, name: string, release: () => void) {
    this.#pointer = pointer;
    const buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, 8);
    this.#words = new Int32Array(buffer);
    this.#what = what;
    this.#name = name;
    this.spin = 200;
    this.lifetime = new Lifetime(() => {
      buffer.transfer(0); // never touch the words once the memory may be unmapped
      release();
    });
  }

  assertOpen(operation: string): void {
    if (this.lifetime.closed) throw closedError(operation, this.#what, this.#name);
  }

  post(): void {
    this.assertOpen("post");
    this.#post();
  }

  tryWait(): boolean {
    this.assertOpen("tryWait");
    return this.attempt() === true;
  }

  value(): number {
    this.assertOpen("read the value of");
    return this.#value();
  }

  wait(options?: WaitOptions): Promise<void> {
    return waitFor(this, options).then(() => {});
  }

  // Waitable<true>
  attempt(): true | typeof PENDING {
    const words = this.#words;
    for (;;) {
      const value = this.#value();
      if (value === 0) return PENDING;
      if (Atomics.compareExchange(words, SEM_VALUE, value, value - 1) === value) return true;
    }
  }

  async park(ms: number): Promise<true | typeof PENDING> {
    const words = this.#words;
    Atomics.add(words, SEM_WAITERS, 1); // before the check: a poster then wakes us
    try {
      if (this.#value() !== 0) return PENDING;
      // Sleeps while the value word is still 0; waitFor makes an attempt next.
      await futexWait(this.#pointer, 0, ms);
      return PENDING;
    } finally {
      Atomics.sub(words, SEM_WAITERS, 1);
    }
  }

  closedError(): Error {
    return closedError("wait", this.#what, this.#name);
  }

  timedOutError(timeoutMs: number): Error {
    return timedOutError("wait", this.#what, this.#name, timeoutMs);
  }

  // The value, checked: glibc never stores one above SEM_VALUE_MAX (a negative int32).
  #value(): number {
    const value = Atomics.load(this.#words, SEM_VALUE);
    if (value < 0) {
      throw CorruptedError.of(
        this.#what,
        this.#name,
        "value",
        `${value >>> 0} is above SEM_VALUE_MAX ${C.SEM_VALUE_MAX}`,
      );
    }
    return value;
  }

  #post(): void {
    const words = this.#words;
    for (;;) {
      const value = this.#value();
      if (value === C.SEM_VALUE_MAX) {
        throw errnoError(ERRNO.EOVERFLOW, "sem_post", {
          objectName: this.#name,
          message: `Cannot post ${this.#what} "${this.#name}": its value is already ` +
            `SEM_VALUE_MAX ${C.SEM_VALUE_MAX} (EOVERFLOW)`,
        });
      }
      if (Atomics.compareExchange(words, SEM_VALUE, value, value + 1) === value) break;
    }
    // The waiter count is read after the value is published (both are locked
    // operations): a waiter that counted itself in before then is woken, and one that
    // counts itself in after sees the new value before it sleeps.
    if (Atomics.load(words, SEM_WAITERS) !== 0) {
      // Errors of a wake (e.g. EFAULT) change nothing here: the value is posted.
      libc().symbols.futex_wake(C.SYS_futex, this.#pointer, C.FUTEX_WAKE, 1, null, null, 0);
    }
  }
}

/**
 * What named and unnamed semaphores have in common: post, wait in its three forms, the
 * current value, and closing this process's handle.
 *
 * @example Waiting with a timeout
 * ```ts
 * import { NamedSemaphore, TimedOutError } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using sem = NamedSemaphore.create({ value: 0 });
 * try {
 *   await assert.rejects(sem.wait({ timeout: 20 }), TimedOutError);
 *   sem.post();
 *   await sem.wait({ timeout: 20 });
 * } finally {
 *   sem.unlink();
 * }
 * ```
 */
export abstract class Semaphore implements Disposable {
  readonly #name: string;
  readonly #core: SemaphoreCore;

  /** For subclasses: `release` frees the handle once no wait uses it any more. */
  protected constructor(
    pointer: Deno.PointerObject,
    what: string,
    name: string,
    release: () => void,
  ) {
    this.#name = name;
    this.#core = new SemaphoreCore(pointer, what, name, release);
  }

  /** The semaphore's name (for an unnamed one: `"/region@offset"`). */
  get name(): string {
    return this.#name;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#core.lifetime.closed;
  }

  /** The current value (as sem_getvalue(3) reports it); `CorruptedError` if it is impossible. */
  get value(): number {
    return this.#core.value();
  }

  /** Increments the value, waking one waiter in any process. See sem_post(3). */
  post(): void {
    this.#core.post();
  }

  /** Decrements the value if it is above zero; returns whether it did. Never waits. */
  tryWait(): boolean {
    return this.#core.tryWait();
  }

  /**
   * Waits until the value can be decremented, then decrements it. Rejects with
   * `TimedOutError` after `timeout` ms, with `signal.reason` when `signal` aborts, and
   * with `ClosedError` when this handle is closed meanwhile.
   */
  wait(options?: WaitOptions): Promise<void> {
    return this.#core.wait(options);
  }

  /** Releases this process's handle (the semaphore itself stays). Idempotent. */
  close(): void {
    this.#core.lifetime.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Throws `ClosedError` naming `operation` if the handle is closed. */
  protected assertOpen(operation: string): void {
    this.#core.assertOpen(operation);
  }
}

/** Options of {@link NamedSemaphore.create}. */
export interface NamedSemaphoreCreateOptions {
  /** Name such as `"/my-sem"`. Default: a fresh random name. */
  name?: string;
  /** Initial value. Default: 0. */
  value?: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/**
 * Options of {@link NamedSemaphore.open}: the semaphore must belong to this process's
 * effective uid and give no group/other access, unless the ownership options say
 * otherwise.
 */
export interface NamedSemaphoreOpenOptions extends OwnershipOptions {
  /** Name of an existing semaphore, such as `"/my-sem"`. */
  name: string;
}

/**
 * Options of {@link NamedSemaphore.openOrCreate}: an existing semaphore must belong to
 * this process's effective uid and give no group/other access beyond `mode`'s (or
 * `allowModes`), unless `allowOtherOwners` is set.
 */
export interface NamedSemaphoreOpenOrCreateOptions extends OwnershipOptions {
  /** Name such as `"/my-sem"`. */
  name: string;
  /** Initial value if created. Default: 0. */
  value?: number;
  /** Permission bits if created, subject to the umask. Default: `0o600`. */
  mode?: number;
}

const NAMED = "semaphore";

/**
 * A named POSIX semaphore: any process that knows the name can open it. It lives until
 * unlinked (and until the last process closes it).
 *
 * @example A post in one handle lets a wait in another complete
 * ```ts
 * import { NamedSemaphore } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using sem = NamedSemaphore.create({ value: 0 });
 * try {
 *   using other = NamedSemaphore.open({ name: sem.name });
 *   const waiting = other.wait({ timeout: 5000 });
 *   sem.post();
 *   await waiting;
 *   assert.equal(sem.value, 0);
 * } finally {
 *   sem.unlink();
 * }
 * ```
 */
export class NamedSemaphore extends Semaphore {
  private constructor(name: string, pointer: Deno.PointerObject) {
    super(pointer, NAMED, name, () => {
      libc().symbols.sem_close(pointer);
    });
  }

  /**
   * Creates a new semaphore exclusively (`AlreadyExistsError` if the name is taken).
   *
   * @example Create with an initial value
   * ```ts
   * import { NamedSemaphore } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using sem = NamedSemaphore.create({ value: 2 });
   * try {
   *   assert.equal(sem.tryWait(), true);
   *   assert.equal(sem.value, 1);
   * } finally {
   *   sem.unlink();
   * }
   * ```
   */
  static create(options: NamedSemaphoreCreateOptions = {}): NamedSemaphore {
    const checked = validateOptions<NamedSemaphoreCreateOptions>(options, NAMED);
    const name = checked.name === undefined
      ? randomPosixName()
      : validatePosixName(checked.name, NAMED, SEM_NAME_MAX);
    const value = validateInteger(checked.value ?? 0, "semaphore value", 0, C.SEM_VALUE_MAX);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, NAMED);
    return NamedSemaphore.#open(name, C.O_CREAT | C.O_EXCL, mode, value, undefined);
  }

  /**
   * Opens an existing semaphore (`NotFoundError` if there is none). One another user
   * owns, or whose mode gives group/other access, is refused with
   * `PermissionDeniedError` unless `allowOtherOwners` / `allowModes` accept it.
   *
   * @example Open by name
   * ```ts
   * import { NamedSemaphore } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using sem = NamedSemaphore.create({ value: 3 });
   * try {
   *   using same = NamedSemaphore.open({ name: sem.name });
   *   assert.equal(same.value, 3);
   * } finally {
   *   sem.unlink();
   * }
   * ```
   */
  static open(options: NamedSemaphoreOpenOptions): NamedSemaphore {
    const checked = validateOptions<NamedSemaphoreOpenOptions>(options, NAMED);
    const name = validatePosixName(checked.name, NAMED, SEM_NAME_MAX);
    return NamedSemaphore.#open(name, 0, 0, 0, validateOwnership(checked));
  }

  /**
   * Opens the semaphore, creating it with `value` if it does not exist.
   *
   * @example Both sides call openOrCreate
   * ```ts
   * import { NamedSemaphore } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const name = `/example-${crypto.randomUUID()}`;
   * using a = NamedSemaphore.openOrCreate({ name, value: 1 });
   * using b = NamedSemaphore.openOrCreate({ name, value: 5 });
   * try {
   *   assert.equal(b.value, 1);
   * } finally {
   *   NamedSemaphore.unlink(name);
   * }
   * ```
   */
  static openOrCreate(options: NamedSemaphoreOpenOrCreateOptions): NamedSemaphore {
    const checked = validateOptions<NamedSemaphoreOpenOrCreateOptions>(options, NAMED);
    const name = validatePosixName(checked.name, NAMED, SEM_NAME_MAX);
    const value = validateInteger(checked.value ?? 0, "semaphore value", 0, C.SEM_VALUE_MAX);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, NAMED);
    return NamedSemaphore.#open(name, C.O_CREAT, mode, value, validateOwnership(checked, mode));
  }

  /**
   * Removes the name; processes that have the semaphore open keep using it.
   * Throws `NotFoundError` if there is no such semaphore.
   *
   * @example Remove by name
   * ```ts
   * import { NamedSemaphore, NotFoundError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const sem = NamedSemaphore.create();
   * sem.close();
   * NamedSemaphore.unlink(sem.name);
   * assert.throws(() => NamedSemaphore.unlink(sem.name), NotFoundError);
   * ```
   */
  static unlink(name: string): void {
    validatePosixName(name, NAMED, SEM_NAME_MAX);
    check("sem_unlink", libc().symbols.sem_unlink(cString(name)), name);
  }

  // `ownership` undefined: the semaphore is made by this call (O_EXCL).
  static #open(
    name: string,
    flags: number,
    mode: number,
    value: number,
    ownership: Ownership | undefined,
  ): NamedSemaphore {
    const { symbols } = libc();
    const pointer = check("sem_open", symbols.sem_open(cString(name), flags, mode, value), name);
    if (ownership) {
      try {
        checkSemaphoreFile(name, ownership);
      } catch (error) {
        symbols.sem_close(pointer);
        throw error;
      }
    }
    return new NamedSemaphore(name, pointer);
  }

  /** Removes the semaphore's name (see {@link NamedSemaphore.unlink}). */
  unlink(): void {
    NamedSemaphore.unlink(this.name);
  }
}

// glibc keeps a named semaphore in the file "sem.NAME" of /dev/shm, a directory every
// user can write: check the owner and mode of that file (never following a link). /dev/shm
// is sticky, so once the file is seen to be ours no other user can replace it.
function checkSemaphoreFile(name: string, ownership: Ownership): void {
  const { symbols } = libc();
  const path = `${C.shmDirectory}/${C.semaphoreFilePrefix}${name.slice(1)}`;
  const fd = symbols.open(cString(path), C.O_RDONLY | C.O_NOFOLLOW | C.O_CLOEXEC, 0);
  if (fd === -1) throw errnoError(lastErrno(), "open", { objectName: name });
  try {
    const status = fileStatus(fd, name);
    checkOwnership([status.uid], status.mode, ownership, NAMED, name, "sem_open");
  } finally {
    symbols.close(fd);
  }
}

/** Options of {@link UnnamedSemaphore.init}. */
export interface UnnamedSemaphoreInitOptions {
  /** Where the semaphore lives in the region; a multiple of 8. Default: 0. */
  byteOffset?: number;
  /** Initial value. Default: 0. */
  value?: number;
}

/** Options of {@link UnnamedSemaphore.attach}. */
export interface UnnamedSemaphoreAttachOptions {
  /** Where the semaphore lives in the region. Default: 0. */
  byteOffset?: number;
}

const UNNAMED = "unnamed semaphore";

/**
 * A process-shared semaphore stored inside a {@link SharedMemory} region (sem_init(3)
 * with `pshared = 1`): one process initializes it, every process that maps the region
 * attaches to it at the same offset. It occupies {@link UnnamedSemaphore.SIZE} bytes.
 *
 * The handle keeps the region mapped while it is open: closing the region first detaches
 * its views but unmaps only after the semaphore handle is closed too.
 *
 * @example Two semaphores in one region
 * ```ts
 * import { SharedMemory, UnnamedSemaphore } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using shm = SharedMemory.create({ size: 2 * UnnamedSemaphore.SIZE });
 * try {
 *   using empty = UnnamedSemaphore.init(shm, { byteOffset: 0, value: 4 });
 *   using full = UnnamedSemaphore.init(shm, { byteOffset: UnnamedSemaphore.SIZE });
 *   await empty.wait();
 *   full.post();
 *   assert.deepEqual([empty.value, full.value], [3, 1]);
 * } finally {
 *   shm.unlink();
 * }
 * ```
 */
export class UnnamedSemaphore extends Semaphore {
  /** Bytes a semaphore occupies in shared memory (`sizeof(sem_t)`). */
  static readonly SIZE: number = C.SIZEOF_SEM_T;

  readonly #pointer: Deno.PointerObject;

  private constructor(shm: SharedMemory, byteOffset: number, pointer: Deno.PointerObject) {
    super(pointer, UNNAMED, `${shm.name}@${byteOffset}`, shm.pin());
    this.#pointer = pointer;
  }

  /**
   * Initializes a new semaphore at `byteOffset` of `shm`. Call it once, in one process,
   * before any process attaches; initializing a semaphore others use is undefined
   * behaviour (sem_init(3)).
   *
   * @example Initialize, then attach from another mapping
   * ```ts
   * import { SharedMemory, UnnamedSemaphore } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using shm = SharedMemory.create({ size: UnnamedSemaphore.SIZE });
   * try {
   *   using sem = UnnamedSemaphore.init(shm, { value: 1 });
   *   using other = SharedMemory.open({ name: shm.name });
   *   using same = UnnamedSemaphore.attach(other);
   *   assert.equal(same.tryWait(), true);
   *   assert.equal(sem.value, 0);
   * } finally {
   *   shm.unlink();
   * }
   * ```
   */
  static init(shm: SharedMemory, options: UnnamedSemaphoreInitOptions = {}): UnnamedSemaphore {
    const checked = validateOptions<UnnamedSemaphoreInitOptions>(options, UNNAMED);
    const byteOffset = validatePlacement(shm, checked.byteOffset ?? 0);
    const value = validateInteger(checked.value ?? 0, "semaphore value", 0, C.SEM_VALUE_MAX);
    const semaphore = new UnnamedSemaphore(shm, byteOffset, shm.unsafePointer(byteOffset));
    const result = libc().symbols.sem_init(semaphore.#pointer, 1, value);
    try {
      check("sem_init", result, semaphore.name);
    } catch (error) {
      semaphore.close();
      throw error;
    }
    return semaphore;
  }

  /**
   * Attaches to a semaphore another handle initialized at `byteOffset` of the same
   * object.
   *
   * @example See {@link UnnamedSemaphore.init}.
   * ```ts
   * import { SharedMemory, UnnamedSemaphore } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using shm = SharedMemory.create({ size: 64 });
   * try {
   *   UnnamedSemaphore.init(shm, { byteOffset: 32, value: 7 }).close();
   *   using sem = UnnamedSemaphore.attach(shm, { byteOffset: 32 });
   *   assert.equal(sem.value, 7);
   * } finally {
   *   shm.unlink();
   * }
   * ```
   */
  static attach(shm: SharedMemory, options: UnnamedSemaphoreAttachOptions = {}): UnnamedSemaphore {
    const checked = validateOptions<UnnamedSemaphoreAttachOptions>(options, UNNAMED);
    const byteOffset = validatePlacement(shm, checked.byteOffset ?? 0);
    return new UnnamedSemaphore(shm, byteOffset, shm.unsafePointer(byteOffset));
  }

  /**
   * Destroys the semaphore (sem_destroy(3)) and closes this handle. Only when no process
   * uses it any more; the region's memory stays.
   */
  destroy(): void {
    this.assertOpen("destroy");
    check("sem_destroy", libc().symbols.sem_destroy(this.#pointer), this.name);
    this.close();
  }
}

function validatePlacement(shm: SharedMemory, byteOffset: number): number {
  if (!(shm instanceof SharedMemory)) {
    throw new TypeError(`Invalid shm: expected a SharedMemory, got ${describe(shm)}`);
  }
  validateInteger(byteOffset, "semaphore byte offset", 0, Math.max(0, shm.size - C.SIZEOF_SEM_T));
  if (byteOffset % C.ALIGNOF_SEM_T !== 0) {
    throw new RangeError(
      `Invalid semaphore byte offset ${byteOffset}: it must be a multiple of ${C.ALIGNOF_SEM_T}`,
    );
  }
  if (shm.size < C.SIZEOF_SEM_T) {
    throw new RangeError(
      `Shared memory "${shm.name}" has ${shm.size} bytes: a semaphore needs ${C.SIZEOF_SEM_T}`,
    );
  }
  return byteOffset;
}

/** A held lock: release it once, by `release()` or by leaving a `using` block. */
export interface MutexGuard extends Disposable {
  /** Releases the lock. Calling it again does nothing. */
  release(): void;
}

/** Options of {@link Mutex.create}. */
export interface MutexCreateOptions {
  /** Name such as `"/my-lock"`. Default: a fresh random name. */
  name?: string;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/**
 * A lock shared by processes: a semaphore of value 1, taken by `lock()` and given back
 * by releasing the guard it returns. The lock is not owned: a process that dies holding
 * it leaves it locked.
 *
 * @example Guard a critical section with `using`
 * ```ts
 * import { Mutex } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using mutex = Mutex.create();
 * try {
 *   {
 *     using _held = await mutex.lock({ timeout: 1000 });
 *     assert.equal(mutex.tryLock(), undefined);
 *   }
 *   assert.ok(mutex.tryLock());
 * } finally {
 *   mutex.unlink();
 * }
 * ```
 */
export class Mutex implements Disposable {
  readonly #semaphore: Semaphore;
  // Guards of this handle not yet released: close() releases them, so that closing a
  // handle never leaves the lock held for other processes.
  readonly #guards = new Set<MutexGuard>();
  // lock() calls not yet settled. close() cancels their waits through #closing; a call
  // that took the unit anyway posts it back, and the last one to settle closes the
  // semaphore handle, so that a unit is never lost with the handle.
  #pending = 0;
  #closed = false;
  readonly #closing = new AbortController();

  /**
   * Wraps a semaphore whose value is 1 (unlocked) or 0 (locked), such as an
   * {@link UnnamedSemaphore} in shared memory. The mutex owns it: `close()` closes it.
   */
  constructor(semaphore: Semaphore) {
    if (!(semaphore instanceof Semaphore)) {
      throw new TypeError("Invalid mutex semaphore: expected a NamedSemaphore or UnnamedSemaphore");
    }
    this.#semaphore = semaphore;
  }

  /** Creates a new named mutex, unlocked. */
  static create(options: MutexCreateOptions = {}): Mutex {
    const checked = validateOptions<MutexCreateOptions>(options, "mutex");
    return new Mutex(NamedSemaphore.create({ ...checked, value: 1 }));
  }

  /** Opens an existing named mutex. */
  static open(options: NamedSemaphoreOpenOptions): Mutex {
    return new Mutex(NamedSemaphore.open(options));
  }

  /** Opens a named mutex, creating it unlocked if it does not exist. */
  static openOrCreate(options: { name: string; mode?: number }): Mutex {
    const checked = validateOptions<{ name: string; mode?: number }>(options, "mutex");
    return new Mutex(
      NamedSemaphore.openOrCreate({ name: checked.name!, mode: checked.mode, value: 1 }),
    );
  }

  /** The underlying semaphore's name. */
  get name(): string {
    return this.#semaphore.name;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Waits for the lock and returns its guard. Same options and errors as
   * {@link NamedSemaphore.wait}; `close()` meanwhile rejects it with `ClosedError`
   * (and never leaves the lock held).
   */
  async lock(options?: WaitOptions): Promise<MutexGuard> {
    this.#assertOpen("lock");
    const { timeout, signal } = validateWaitOptions(options);
    signal?.throwIfAborted();
    this.#pending++;
    try {
      if (!this.#semaphore.tryWait()) {
        await this.#semaphore.wait({
          timeout,
          signal: signal === undefined
            ? this.#closing.signal
            : AbortSignal.any([this.#closing.signal, signal]),
        });
      }
      if (this.#closed) {
        // Taken after close(): give it back before the semaphore handle goes.
        this.#semaphore.post();
        throw this.#closedError("lock");
      }
      return this.#guard();
    } catch (error) {
      // close() aborted the wait: report it as closed, not as an abort.
      if (this.#closed && error === this.#closing.signal.reason) throw this.#closedError("lock");
      throw error;
    } finally {
      this.#pending--;
      if (this.#closed && this.#pending === 0) this.#semaphore.close();
    }
  }

  /** Takes the lock if it is free; returns its guard, or `undefined` if it is held. */
  tryLock(): MutexGuard | undefined {
    this.#assertOpen("tryLock");
    return this.#semaphore.tryWait() ? this.#guard() : undefined;
  }

  /**
   * Releases the locks this handle holds, ends its pending `lock()` calls with
   * `ClosedError`, then closes the underlying semaphore handle. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const guard of [...this.#guards]) guard.release();
    this.#closing.abort(this.#closedError("lock"));
    if (this.#pending === 0) this.#semaphore.close();
  }

  /**
   * Removes a named mutex's name (see {@link NamedSemaphore.unlink}). A mutex over an
   * unnamed semaphore has no name to remove: that is a TypeError.
   */
  unlink(): void {
    if (!(this.#semaphore instanceof NamedSemaphore)) {
      throw new TypeError(`Mutex "${this.name}" is not named: there is nothing to unlink`);
    }
    this.#semaphore.unlink();
  }

  /** Same as {@link Mutex.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(operation: string): void {
    if (this.#closed) throw this.#closedError(operation);
  }

  #closedError(operation: string): Error {
    return closedError(operation, "mutex", this.name);
  }

  #guard(): MutexGuard {
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.#guards.delete(guard);
      this.#semaphore.post();
    };
    const guard: MutexGuard = { release, [Symbol.dispose]: release };
    this.#guards.add(guard);
    return guard;
  }
}

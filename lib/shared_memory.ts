/**
 * POSIX shared memory: a named region of memory that several processes map at once
 * (`shm_open`, `posix_fallocate`, `mmap`). See shm_overview(7).
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { check, closedError, ErrnoError } from "../ffi/errno.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  checkOwnership,
  fileStatus,
  type Ownership,
  type OwnershipOptions,
  validateOwnership,
} from "./_owner.ts";
import { currentPid, currentStartTime, processAlive } from "./_process.ts";
import { step } from "./_steps.ts";
import {
  cString,
  DEFAULT_MODE,
  randomPosixName,
  SHM_NAME_MAX,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";

/** Options of {@link SharedMemory.create}. */
export interface SharedMemoryCreateOptions {
  /** Name such as `"/my-region"`. Default: a fresh random name. */
  name?: string;
  /** Size in bytes (at least 1). */
  size: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
  /**
   * Writes the object's first contents (a header, say) before its name appears: no
   * process can open it half-initialized, and a creator that dies before this returns
   * leaves no object under `name`. If it throws, nothing is created.
   */
  initialize?: (shm: SharedMemory) => void;
}

/**
 * Options of {@link SharedMemory.open}. The object must belong to this process's
 * effective uid and give no group/other access unless `allowModes` /
 * `allowOtherOwners` say otherwise (`PermissionDeniedError`).
 */
export interface SharedMemoryOpenOptions extends OwnershipOptions {
  /** Name of an existing object, such as `"/my-region"`. */
  name: string;
}

/**
 * Options of {@link SharedMemory.openOrCreate}. An existing object must belong to this
 * process's effective uid and give no group/other access beyond `mode`'s (or
 * `allowModes`), unless `allowOtherOwners` is set (`PermissionDeniedError`).
 */
export interface SharedMemoryOpenOrCreateOptions extends OwnershipOptions {
  /** Name such as `"/my-region"`. */
  name: string;
  /** Size in bytes when created; an existing object must be at least this large. */
  size: number;
  /** Permission bits when created, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/** A typed array constructor usable with {@link SharedMemory.view}. */
export type TypedArrayConstructor<T> = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

// How long an opener waits for a creator that has not sized its object yet: yields
// first, then sleeps of 1 ms, about 200 ms in all.
const NOT_READY_YIELDS = 50;
/** The largest object this library maps. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER;
const WHAT = "shared memory";

/**
 * A mapping of a POSIX shared memory object. The mapping is `MAP_SHARED` and read-write:
 * what one process writes through {@link SharedMemory.bytes} or a typed
 * {@link SharedMemory.view}, every other process mapping the same name sees.
 * `Atomics` operations on these views are atomic across processes.
 *
 * `close()` unmaps this process's view of the object; `unlink()` removes its name, and the
 * memory is freed when the last process unmaps it. Objects outlive processes: call
 * `unlink()` (or {@link SharedMemory.unlink}) when no process will open it again.
 *
 * @example Writing in one mapping, reading in another
 * ```ts
 * import { SharedMemory } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using writer = SharedMemory.create({ size: 4096 });
 * try {
 *   writer.bytes.set(new TextEncoder().encode("Hello"));
 *   using reader = SharedMemory.open({ name: writer.name });
 *   assert.equal(new TextDecoder().decode(reader.bytes.subarray(0, 5)), "Hello");
 * } finally {
 *   writer.unlink();
 * }
 * ```
 */
export class SharedMemory implements Disposable {
  readonly #name: string;
  readonly #size: number;
  readonly #created: boolean;
  readonly #pointer: Deno.PointerObject;
  readonly #buffer: ArrayBuffer;
  readonly #lifetime: Lifetime;
  #bytes: Uint8Array<ArrayBuffer> | undefined;

  private constructor(name: string, size: number, pointer: Deno.PointerObject, created: boolean) {
    this.#name = name;
    this.#size = size;
    this.#created = created;
    this.#pointer = pointer;
    this.#buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, size);
    this.#lifetime = new Lifetime(() => {
      libc().symbols.munmap(pointer, BigInt(size));
    });
  }

  /**
   * Creates a new object exclusively (fails with `AlreadyExistsError` if the name is
   * taken), sizes it, reserves its memory and maps it.
   *
   * Memory is reserved with posix_fallocate(3), so a full `/dev/shm` is an `ErrnoError`
   * with code `ENOSPC` here rather than a SIGBUS on a later write. (A process that can
   * write the object can still shrink it with ftruncate(2), and our next access past
   * the new end dies with SIGBUS: see the ownership checks of {@link SharedMemory.open}.)
   * On any failure the half-made object is removed again.
   *
   * @example Create with a random name
   * ```ts
   * import { SharedMemory } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using shm = SharedMemory.create({ size: 1024 });
   * try {
   *   assert.equal(shm.size, 1024);
   *   assert.ok(shm.name.startsWith("/deno-ipc-"));
   * } finally {
   *   shm.unlink();
   * }
   * ```
   */
  static create(options: SharedMemoryCreateOptions): SharedMemory {
    const checked = validateOptions<SharedMemoryCreateOptions>(options, WHAT);
    const name = checked.name === undefined ? randomPosixName() : validateObjectName(checked.name);
    const size = validateInteger(checked.size, `${WHAT} size`, 1, MAX_SIZE);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    if (checked.initialize !== undefined && typeof checked.initialize !== "function") {
      throw new TypeError(`Invalid ${WHAT} option initialize: expected a function`);
    }
    return SharedMemory.#create(name, size, mode, checked.initialize);
  }

  /**
   * Opens and maps an existing object; its size is read from the object (fstat(2)).
   *
   * An object another user owns, or whose mode gives group or other users access, is
   * refused with `PermissionDeniedError` (whoever can write it can forge its contents, or
   * shrink it so that our next access dies with SIGBUS): see `allowModes` and
   * `allowOtherOwners`.
   *
   * @example Open by name
   * ```ts
   * import { SharedMemory } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using created = SharedMemory.create({ size: 64 });
   * try {
   *   using opened = SharedMemory.open({ name: created.name });
   *   assert.equal(opened.size, 64);
   * } finally {
   *   created.unlink();
   * }
   * ```
   */
  static open(options: SharedMemoryOpenOptions): SharedMemory {
    const checked = validateOptions<SharedMemoryOpenOptions>(options, WHAT);
    const name = validateObjectName(checked.name);
    const ownership = validateOwnership(checked);
    return SharedMemory.#openWhenReady(name, 0, ownership);
  }

  /**
   * Opens the object if it exists (it must be at least `size` bytes), otherwise creates
   * it. Safe when several processes race to do the same.
   *
   * @example Both sides call openOrCreate
   * ```ts
   * import { SharedMemory } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const name = `/example-${crypto.randomUUID()}`;
   * using a = SharedMemory.openOrCreate({ name, size: 128 });
   * using b = SharedMemory.openOrCreate({ name, size: 128 });
   * try {
   *   assert.equal(a.created, true);
   *   assert.equal(b.created, false);
   * } finally {
   *   SharedMemory.unlink(name);
   * }
   * ```
   */
  static openOrCreate(options: SharedMemoryOpenOrCreateOptions): SharedMemory {
    const checked = validateOptions<SharedMemoryOpenOrCreateOptions>(options, WHAT);
    const name = validateObjectName(checked.name);
    const size = validateInteger(checked.size, `${WHAT} size`, 1, MAX_SIZE);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const ownership = validateOwnership(checked, mode);
    // Open first: creating reserves a full-size temporary, which must not be paid (or
    // fail with ENOSPC) for an object that exists. Retry while another process creates
    // or removes the same name between our calls.
    for (let attempt = 0;; attempt++) {
      try {
        return SharedMemory.#openWhenReady(name, size, ownership);
      } catch (error) {
        if (!(error instanceof ErrnoError && error.code === "ENOENT") || attempt > 100) throw error;
      }
      try {
        return SharedMemory.#create(name, size, mode);
      } catch (error) {
        if (!(error instanceof ErrnoError && error.code === "EEXIST") || attempt > 100) throw error;
      }
    }
  }

  /**
   * Removes the name `name`. Processes that have it mapped keep their mapping; the memory
   * is freed after the last one unmaps. Throws `NotFoundError` if there is no such object.
   *
   * @example Remove by name
   * ```ts
   * import { NotFoundError, SharedMemory } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const shm = SharedMemory.create({ size: 16 });
   * shm.close();
   * SharedMemory.unlink(shm.name);
   * assert.throws(() => SharedMemory.unlink(shm.name), NotFoundError);
   * ```
   */
  static unlink(name: string): void {
    validatePosixName(name, WHAT, SHM_NAME_MAX);
    check("shm_unlink", libc().symbols.shm_unlink(cString(name)), name);
  }

  // The object is made whole under a private temporary name, then linked to `name` in one
  // step (link(2) fails with EEXIST if the name is taken: the exclusive create), so no
  // process ever opens it before it is sized, reserved and initialized. A creator killed
  // before the link leaves only its temporary, which names its pid and start time:
  // the next create removes it once that process is dead.
  static #create(
    name: string,
    size: number,
    mode: number,
    initialize?: (shm: SharedMemory) => void,
  ): SharedMemory {
    const { symbols } = libc();
    removeDeadTemporaries();
    const temporary = temporaryName();
    const temporaryPath = cString(temporary);
    const fd = check(
      "shm_open",
      symbols.shm_open(temporaryPath, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_CLOEXEC, mode),
      name,
    );
    try {
      // posix_fallocate both reserves the memory and sets the size: a full /dev/shm is
      // ENOSPC here, never a SIGBUS on a later write.
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), name);
      const shm = new SharedMemory(name, size, mapShared(fd, size, name), true);
      try {
        initialize?.(shm);
        step("shm.create.initialized");
        check(
          "link",
          symbols.link(
            cString(`${C.shmDirectory}${temporary}`),
            cString(`${C.shmDirectory}${name}`),
          ),
          name,
        );
      } catch (error) {
        shm.close();
        throw error;
      }
      return shm;
    } finally {
      symbols.shm_unlink(temporaryPath);
      symbols.close(fd);
    }
  }

  // Opens an object, yielding the CPU a few times while its size is 0: objects this
  // library makes never have size 0 under their name (see #create), so only another
  // program's object between its shm_open and its ftruncate does, for microseconds. A
  // longer wait would block the event loop: after the yields, size 0 is an error.
  static #openWhenReady(name: string, minimumSize: number, ownership: Ownership): SharedMemory {
    for (let attempt = 0;; attempt++) {
      const final = attempt >= NOT_READY_YIELDS;
      const opened = SharedMemory.#open(name, minimumSize, ownership, final);
      if (opened) return opened;
      libc().symbols.sched_yield();
    }
  }

  // Returns undefined for an object of size 0, unless `final` (then it throws).
  static #open(
    name: string,
    minimumSize: number,
    ownership: Ownership,
    final: boolean,
  ): SharedMemory | undefined {
    const { symbols } = libc();
    const fd = check("shm_open", symbols.shm_open(cString(name), C.O_RDWR | C.O_CLOEXEC, 0), name);
    try {
      // Owner and mode first, before we touch (fallocate, map) someone else's object.
      const status = fileStatus(fd, name);
      checkOwnership([status.uid], status.mode, ownership, WHAT, name, "shm_open");
      // The size comes from the object itself, never from what the caller expects, so
      // the mapping never reaches past the end of the object.
      const size = status.size;
      if (size === 0 && !final) return undefined;
      if (size === 0 || size < minimumSize) {
        throw new ErrnoError(ERRNO.EINVAL, "shm_open", {
          objectName: name,
          message: size === 0
            ? `Shared memory "${name}" has size 0: its creator has not sized it`
            : `Shared memory "${name}" has ${size} bytes, fewer than the ${minimumSize} asked for`,
        });
      }
      // An object made by another program may be sparse: reserve its memory now, so
      // that a full /dev/shm is ENOSPC here instead of SIGBUS on a later write.
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), name);
      return new SharedMemory(name, size, mapShared(fd, size, name), false);
    } finally {
      symbols.close(fd);
    }
  }

  /** The object's name, e.g. `"/my-region"`. */
  get name(): string {
    return this.#name;
  }

  /** Size of the mapping in bytes. */
  get size(): number {
    return this.#size;
  }

  /** Whether this handle created the object (rather than opened an existing one). */
  get created(): boolean {
    return this.#created;
  }

  /** Whether {@link SharedMemory.close} was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * The whole mapping as an ArrayBuffer. After `close()` it is detached (length 0), as
   * is every view made from it, so stale views read `undefined` instead of crashing.
   *
   * Do not `transfer()` it: the new buffer would still point at the mapping, so
   * `close()` could no longer unmap safely and leaves the mapping in place.
   */
  get buffer(): ArrayBuffer {
    this.#assertOpen("get the buffer of");
    return this.#buffer;
  }

  /** The whole mapping as bytes. */
  get bytes(): Uint8Array<ArrayBuffer> {
    this.#assertOpen("get the bytes of");
    return this.#bytes ??= new Uint8Array(this.#buffer);
  }

  /**
   * A typed view of `length` elements at `byteOffset` (default: from there to the end).
   * The offset must be aligned to the element size.
   *
   * @example A counter shared by processes
   * ```ts
   * import { SharedMemory } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using shm = SharedMemory.create({ size: 8 });
   * try {
   *   const counter = shm.view(Int32Array, 0, 1);
   *   Atomics.add(counter, 0, 5);
   *   assert.equal(Atomics.load(counter, 0), 5);
   * } finally {
   *   shm.unlink();
   * }
   * ```
   */
  view<T>(type: TypedArrayConstructor<T>, byteOffset = 0, length?: number): T {
    this.#assertOpen("make a view of");
    return typedView(this.#buffer, this.#size, type, byteOffset, length);
  }

  /**
   * The raw address of byte `byteOffset` of the mapping, for placing native objects
   * (such as an `UnnamedSemaphore`) in it. Valid only until `close()`.
   */
  unsafePointer(byteOffset = 0): Deno.PointerObject {
    this.#assertOpen("get a pointer into");
    validateInteger(byteOffset, "byte offset", 0, this.#size - 1);
    return Deno.UnsafePointer.offset(this.#pointer, byteOffset)!;
  }

  /**
   * Keeps the mapping alive while a dependent object (e.g. a semaphore inside it) is in
   * use; returns the function that ends the pin. `close()` still detaches the buffer at
   * once, but unmaps only after the last pin ends.
   */
  pin(): () => void {
    this.#assertOpen("pin");
    this.#lifetime.pin();
    let pinned = true;
    return () => {
      if (pinned) {
        pinned = false;
        this.#lifetime.unpin();
      }
    };
  }

  /**
   * Detaches every view and unmaps this process's mapping (the object itself stays: see
   * {@link SharedMemory.unlink}). Calling it again does nothing.
   */
  close(): void {
    if (this.#lifetime.closed) return;
    this.#bytes = undefined;
    if (this.#buffer.detached) {
      // Someone transferred the buffer: its new owner still points at the mapping, and
      // unmapping would make it crash the process. Leaving it mapped is the safe choice.
      this.#lifetime.pin();
    } else {
      // Detach before unmapping: a view touched after munmap would kill the process.
      this.#buffer.transfer(0);
    }
    this.#lifetime.close();
  }

  /**
   * Removes the object's name (see {@link SharedMemory.unlink}); this mapping stays
   * usable until `close()`.
   */
  unlink(): void {
    SharedMemory.unlink(this.#name);
  }

  /** Same as {@link SharedMemory.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#name);
  }
}

function mapShared(fd: number, size: number, name: string): Deno.PointerObject {
  const mapped = libc().symbols.mmap(
    null,
    BigInt(size),
    C.PROT_READ | C.PROT_WRITE,
    C.MAP_SHARED,
    fd,
    0n,
  );
  return check("mmap", mapped, name);
}

/**
 * A typed view of `length` elements at `byteOffset` of a mapping of `size` bytes (default:
 * to the end), checked: a typed array constructor, an aligned offset, within the mapping.
 * Shared by SharedMemory and MappedFile (not part of the public API).
 */
export function typedView<T>(
  buffer: ArrayBuffer,
  size: number,
  type: TypedArrayConstructor<T>,
  byteOffset: number,
  length: number | undefined,
): T {
  const elementSize = type?.BYTES_PER_ELEMENT;
  if (typeof elementSize !== "number") {
    throw new TypeError("Invalid view type: expected a typed array constructor");
  }
  validateInteger(byteOffset, "view byte offset", 0, size);
  if (byteOffset % elementSize !== 0) {
    throw new RangeError(
      `Invalid view byte offset ${byteOffset}: it must be a multiple of ${elementSize}`,
    );
  }
  const available = Math.floor((size - byteOffset) / elementSize);
  const count = length === undefined
    ? available
    : validateInteger(length, "view length", 0, available);
  return new type(buffer, byteOffset, count);
}

// Temporary names: "/.deno-ipc-init.PID.START.RANDOM" (hidden, and never a valid name of
// the library's own objects, which start with a letter).
const TEMPORARY_PREFIX = ".deno-ipc-init.";
const TEMPORARY_PATTERN = /^\.deno-ipc-init\.(\d+)\.(\d+)\.[0-9a-f]{16}$/;

// A name a user may create or open: not a temporary's, which the next create removes
// once its creator is dead.
function validateObjectName(name: unknown): string {
  const checked = validatePosixName(name, WHAT, SHM_NAME_MAX);
  if (checked.startsWith(`/${TEMPORARY_PREFIX}`)) {
    throw new RangeError(
      `Invalid ${WHAT} name "${checked}": names starting with "/${TEMPORARY_PREFIX}" are ` +
        `reserved for objects being created`,
    );
  }
  return checked;
}

function temporaryName(): string {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return `/${TEMPORARY_PREFIX}${currentPid()}.${currentStartTime()}.${random}`;
}

// Removes the temporaries of creators that died between making and publishing an object.
function removeDeadTemporaries(): void {
  // Never a permission prompt: without read access the leftovers stay until a create
  // that has it.
  const read = Deno.permissions.querySync({ name: "read", path: C.shmDirectory });
  if (read.state !== "granted") return;
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync(C.shmDirectory);
  } catch {
    return; // no read permission: the leftovers stay until a permitted create
  }
  for (const entry of entries) {
    if (!entry.name.startsWith(TEMPORARY_PREFIX)) continue;
    const match = TEMPORARY_PATTERN.exec(entry.name);
    if (match === null || processAlive(Number(match[1]), Number(match[2]))) continue;
    libc().symbols.shm_unlink(cString(`/${entry.name}`));
  }
}

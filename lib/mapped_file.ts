/**
 * Memory-mapped files: a regular file mapped `MAP_SHARED` into every process that opens
 * it (mmap(2)). Writes through one mapping are seen by every other at once, and the
 * contents stay in the file after every process has exited. This is what POSIX shared
 * memory is built on, with a path in an ordinary file system instead of `/dev/shm`.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { check, closedError, ErrnoError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { AT_FDCWD, checkOwnership, openNoFollow, validatePath } from "./_file.ts";
import { Lifetime } from "./_lifetime.ts";
import { type TypedArrayConstructor, typedView } from "./shared_memory.ts";
import {
  cString,
  DEFAULT_MODE,
  validateInteger,
  validateMode,
  validateOptions,
} from "./_validate.ts";

/** Options of {@link MappedFile.create}. */
export interface MappedFileCreateOptions {
  /** Size in bytes (at least 1). */
  size: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/** Options of {@link MappedFile.open}. */
export interface MappedFileOpenOptions {
  /** The file must be at least this large. Default: 1. */
  minimumSize?: number;
  /** The most permission bits the file may grant; a file with others is refused. Default: `0o600`. */
  mode?: number;
}

const WHAT = "mapped file";
const MAX_SIZE = Number.MAX_SAFE_INTEGER;

/**
 * A mapping of a regular file, with the API of `SharedMemory`: {@link MappedFile.bytes},
 * typed {@link MappedFile.view}s, `close()` detaching every view, `using`.
 *
 * No SIGBUS on a short file: `create()` and `grow()` reserve the blocks with
 * posix_fallocate(3) before the size is used, and `open()` maps only the size fstat(2)
 * reports, after reserving it too. (A process that truncates the file under a mapping
 * still makes other processes' accesses past the new end fault: this library never
 * shrinks a file.)
 *
 * @example Contents persist after the mapping is closed
 * ```ts
 * import { MappedFile } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const dir = Deno.makeTempDirSync();
 * const path = `${dir}/data`;
 * {
 *   using file = MappedFile.create(path, { size: 4096 });
 *   file.bytes.set(new TextEncoder().encode("Hello"));
 * }
 * using again = MappedFile.open(path);
 * assert.equal(new TextDecoder().decode(again.bytes.subarray(0, 5)), "Hello");
 * MappedFile.unlink(path);
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class MappedFile implements Disposable {
  readonly #path: string;
  readonly #fd: number;
  #size: number;
  #pointer: Deno.PointerObject;
  #buffer: ArrayBuffer;
  #bytes: Uint8Array<ArrayBuffer> | undefined;
  #lifetime: Lifetime;

  private constructor(path: string, fd: number, size: number) {
    this.#path = path;
    this.#fd = fd;
    this.#size = size;
    this.#pointer = mapShared(fd, size, path);
    this.#buffer = Deno.UnsafePointerView.getArrayBuffer(this.#pointer, size);
    this.#lifetime = this.#newLifetime(true);
  }

  /**
   * Creates a new file exclusively (`AlreadyExistsError` if anything exists at `path`),
   * reserves `size` bytes of zeros and maps it. A full disk is an `ErrnoError` with code
   * `ENOSPC` here; on any failure the file is removed again.
   *
   * @example
   * ```ts
   * import { MappedFile } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/data`;
   * using file = MappedFile.create(path, { size: 64 });
   * assert.equal(file.size, 64);
   * MappedFile.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static create(path: string, options: MappedFileCreateOptions): MappedFile {
    validatePath(path, WHAT);
    const checked = validateOptions<MappedFileCreateOptions>(options, WHAT);
    const size = validateInteger(checked.size, `${WHAT} size`, 1, MAX_SIZE);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const { symbols } = libc();
    const fd = openNoFollow(AT_FDCWD, path, C.O_RDWR | C.O_CREAT | C.O_EXCL, mode);
    try {
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), path);
      return new MappedFile(path, fd, size);
    } catch (error) {
      symbols.close(fd);
      symbols.unlink(cString(path));
      throw error;
    }
  }

  /**
   * Opens and maps an existing file at its current size. Refuses symbolic links, anything
   * but a regular file, files of another user and permission bits beyond `mode`; a file
   * smaller than `minimumSize` (or empty) is an `ErrnoError` with code `EINVAL`.
   *
   * @example
   * ```ts
   * import { MappedFile } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/data`;
   * MappedFile.create(path, { size: 128 }).close();
   * using file = MappedFile.open(path, { minimumSize: 100 });
   * assert.equal(file.size, 128);
   * MappedFile.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  static open(path: string, options: MappedFileOpenOptions = {}): MappedFile {
    validatePath(path, WHAT);
    const checked = validateOptions<MappedFileOpenOptions>(options, WHAT);
    const minimumSize = validateInteger(checked.minimumSize ?? 1, "minimum size", 1, MAX_SIZE);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const { symbols } = libc();
    const fd = openNoFollow(AT_FDCWD, path, C.O_RDWR, 0);
    try {
      const { size } = checkOwnership(fd, path, C.S_IFREG, mode, WHAT);
      if (size < minimumSize) {
        throw new ErrnoError(ERRNO.EINVAL, "open", {
          objectName: path,
          message:
            `Mapped file "${path}" has ${size} bytes, fewer than the ${minimumSize} asked for`,
        });
      }
      // The file may be sparse: reserve its blocks now, so that a full disk is ENOSPC
      // here instead of SIGBUS on a later write through the mapping.
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), path);
      return new MappedFile(path, fd, size);
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
  }

  /**
   * Removes the file at `path`; mappings of it stay valid until closed.
   *
   * @example
   * ```ts
   * import { MappedFile, NotFoundError } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/data`;
   * MappedFile.create(path, { size: 8 }).close();
   * MappedFile.unlink(path);
   * assert.throws(() => MappedFile.unlink(path), NotFoundError);
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

  /** Size of the mapping in bytes. */
  get size(): number {
    return this.#size;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** The whole mapping; detached (length 0) after `close()` or `grow()`. Do not transfer it. */
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
   * A typed view of `length` elements at `byteOffset` (default: to the end); the offset
   * must be aligned to the element size. `Atomics` on it are atomic across processes.
   *
   * @example
   * ```ts
   * import { MappedFile } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/counter`;
   * using file = MappedFile.create(path, { size: 8 });
   * Atomics.add(file.view(Int32Array, 0, 1), 0, 3);
   * assert.equal(file.view(Int32Array)[0], 3);
   * MappedFile.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  view<T>(type: TypedArrayConstructor<T>, byteOffset = 0, length?: number): T {
    this.#assertOpen("make a view of");
    return typedView(this.#buffer, this.#size, type, byteOffset, length);
  }

  /**
   * Grows the file to `size` bytes (reserving the new blocks first) and maps it again.
   * Every earlier buffer and view is detached: make new ones. Other processes keep their
   * smaller mapping until they open the file again.
   *
   * @example
   * ```ts
   * import { MappedFile } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const dir = Deno.makeTempDirSync();
   * const path = `${dir}/data`;
   * using file = MappedFile.create(path, { size: 16 });
   * file.bytes[0] = 7;
   * file.grow(8192);
   * assert.equal(file.size, 8192);
   * assert.equal(file.bytes[0], 7);
   * MappedFile.unlink(path);
   * Deno.removeSync(dir, { recursive: true });
   * ```
   */
  grow(size: number): void {
    this.#assertOpen("grow");
    validateInteger(size, `${WHAT} size`, this.#size, MAX_SIZE);
    if (size === this.#size) return;
    check(
      "posix_fallocate",
      libc().symbols.posix_fallocate(this.#fd, 0n, BigInt(size)),
      this.#path,
    );
    const pointer = mapShared(this.#fd, size, this.#path);
    this.#detachAndRelease(false);
    this.#pointer = pointer;
    this.#size = size;
    this.#buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, size);
    this.#lifetime = this.#newLifetime(true);
  }

  /**
   * Writes the mapping's dirty pages to the file and waits for the device (msync(2)
   * `MS_SYNC`): needed only for durability across a power loss, not to be seen by
   * other processes.
   */
  sync(): void {
    this.#assertOpen("sync");
    check("msync", libc().symbols.msync(this.#pointer, BigInt(this.#size), C.MS_SYNC), this.#path);
  }

  /** Detaches every view, unmaps and closes the file (which stays on disk). Idempotent. */
  close(): void {
    if (this.#lifetime.closed) return;
    this.#detachAndRelease(true);
  }

  /** Same as {@link MappedFile.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #newLifetime(ownsFd: boolean): Lifetime {
    const pointer = this.#pointer;
    const size = this.#size;
    const fd = this.#fd;
    let closeFd = ownsFd;
    const lifetime = new Lifetime(() => {
      libc().symbols.munmap(pointer, BigInt(size));
      if (closeFd) libc().symbols.close(fd);
    });
    // grow() hands the descriptor on to the next mapping's lifetime.
    this.#keepFd = () => closeFd = false;
    return lifetime;
  }

  #keepFd: () => void = () => {};

  #detachAndRelease(closing: boolean): void {
    this.#bytes = undefined;
    if (!closing) this.#keepFd();
    if (this.#buffer.detached) {
      // Someone transferred the buffer: its new owner still points at the mapping.
      this.#lifetime.pin();
    } else {
      this.#buffer.transfer(0);
    }
    this.#lifetime.close();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#path);
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

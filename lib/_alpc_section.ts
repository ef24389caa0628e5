// ALPC sections: shared memory tied to one channel. Each side that sends large messages
// owns a section (a memfd: it has no name, so nobody can open it; its descriptor travels
// to the peer in SCM_RIGHTS at connect time and is closed once mapped). The writer
// allocates space in its own section; the reader maps the peer's section read-only, and
// says when it is done with a message's space (a `free` message), which frees it.
import { C, ERRNO } from "../ffi/constants.ts";
import { check, CorruptedError, WouldBlockError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { fileStatus } from "./_owner.ts";
import { cString } from "./_validate.ts";
import { type WaitOptions, within } from "./_wait.ts";
import { timedOutError } from "../ffi/errno.ts";

/** Section space is handed out in multiples of this many bytes. */
const ALIGNMENT = 64;
const REQUIRED_SEALS = C.F_SEAL_SHRINK | C.F_SEAL_GROW;

/** The section had no room for a message and the sender chose not to wait. */
export class SectionFullError extends WouldBlockError {}

function mapShared(fd: number, size: number, writable: boolean, name: string): Deno.PointerObject {
  const protection = C.PROT_READ | (writable ? C.PROT_WRITE : 0);
  return check(
    "mmap",
    libc().symbols.mmap(null, BigInt(size), protection, C.MAP_SHARED, fd, 0n),
    name,
  );
}

/** This side's section: written here, read by the peer. */
export class OwnSection {
  readonly size: number;
  readonly #name: string;
  readonly #pointer: Deno.PointerObject;
  #buffer: ArrayBuffer;
  #bytes: Uint8Array;
  // Free ranges [start, end), sorted and coalesced; allocations by offset.
  #free: { start: number; end: number }[];
  readonly #allocated = new Map<number, number>();
  #waiters: (() => void)[] = [];
  #closed = false;
  /** The memfd until it was sent (then closed: the mapping keeps the memory). */
  descriptor: number;

  private constructor(size: number, name: string, descriptor: number, pointer: Deno.PointerObject) {
    this.size = size;
    this.#name = name;
    this.descriptor = descriptor;
    this.#pointer = pointer;
    this.#buffer = Deno.UnsafePointerView.getArrayBuffer(pointer, size);
    this.#bytes = new Uint8Array(this.#buffer);
    this.#free = [{ start: 0, end: size }];
  }

  /**
   * Creates a sealed memfd of `size` bytes, its memory reserved (a tmpfs that runs out
   * later would kill the writer with SIGBUS), and maps it.
   */
  static create(size: number, name: string): OwnSection {
    const { symbols } = libc();
    const fd = check(
      "memfd_create",
      symbols.memfd_create(cString("deno-ipc-alpc-section"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING),
      name,
    );
    try {
      check("ftruncate", symbols.ftruncate(fd, BigInt(size)), name);
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), name);
      // The reader requires these seals: a section that can shrink under it would kill
      // it with SIGBUS.
      check("fcntl", symbols.fcntl(fd, C.F_ADD_SEALS, REQUIRED_SEALS | C.F_SEAL_SEAL), name);
      return new OwnSection(size, name, fd, mapShared(fd, size, true, name));
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
  }

  /** Closes the descriptor once the peer has its copy. */
  closeDescriptor(): void {
    if (this.descriptor >= 0) libc().symbols.close(this.descriptor);
    this.descriptor = -1;
  }

  /** Bytes currently handed out. */
  get used(): number {
    let total = 0;
    for (const length of this.#allocated.values()) total += length;
    return total;
  }

  /** Space for `length` bytes (first fit), or undefined when there is no room now. */
  tryAllocate(length: number): number | undefined {
    const rounded = Math.max(ALIGNMENT, Math.ceil(length / ALIGNMENT) * ALIGNMENT);
    for (let i = 0; i < this.#free.length; i++) {
      const range = this.#free[i];
      const available = range.end - range.start;
      // The section's end may cut the last range short of a whole multiple: a message
      // that fits there takes the rest.
      const take = range.end === this.size ? Math.min(rounded, available) : rounded;
      if (take < length || available < take) continue;
      const offset = range.start;
      range.start += take;
      if (range.start === range.end) this.#free.splice(i, 1);
      this.#allocated.set(offset, take);
      return offset;
    }
    return undefined;
  }

  /**
   * Space for `length` bytes; when full, waits for the reader to free some (timeout,
   * signal) or, with `wait: false`, throws {@link SectionFullError}.
   */
  async allocate(length: number, wait: boolean, options: WaitOptions): Promise<number> {
    while (true) {
      if (this.#closed) throw new Error("section closed");
      const offset = this.tryAllocate(length);
      if (offset !== undefined) return offset;
      if (!wait) {
        throw new SectionFullError(ERRNO.EAGAIN, "send", {
          objectName: this.#name,
          message: `The section of ALPC port "${this.#name}" has no room for ${length} bytes ` +
            `(${this.used} of ${this.size} in use until the receiver releases them)`,
        });
      }
      const freed = new Promise<void>((resolve) => this.#waiters.push(resolve));
      await within(freed, options, (ms) => timedOutError("send", "ALPC port", this.#name, ms));
    }
  }

  /** Copies `bytes` to `offset`. */
  write(offset: number, bytes: Uint8Array): void {
    this.#bytes.set(bytes, offset);
  }

  /** Frees what the peer released; false when `offset` was never handed out (hostile). */
  free(offset: number): boolean {
    const length = this.#allocated.get(offset);
    if (length === undefined) return false;
    this.#allocated.delete(offset);
    const start = offset;
    const end = offset + length;
    let i = 0;
    while (i < this.#free.length && this.#free[i].start < start) i++;
    this.#free.splice(i, 0, { start, end });
    // Coalesce with the neighbours.
    if (i + 1 < this.#free.length && this.#free[i].end === this.#free[i + 1].start) {
      this.#free[i].end = this.#free[i + 1].end;
      this.#free.splice(i + 1, 1);
    }
    if (i > 0 && this.#free[i - 1].end === this.#free[i].start) {
      this.#free[i - 1].end = this.#free[i].end;
      this.#free.splice(i, 1);
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
    return true;
  }

  /** Unmaps (detaching the buffer first: a stale view reads nothing, never freed memory). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closeDescriptor();
    this.#buffer.transfer(0);
    libc().symbols.munmap(this.#pointer, BigInt(this.size));
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** The peer's section, mapped read-only here. */
export class PeerSection {
  readonly size: number;
  readonly #name: string;
  readonly #pointer: Deno.PointerObject;
  readonly #views = new Set<ArrayBuffer>();
  #closed = false;

  private constructor(size: number, name: string, pointer: Deno.PointerObject) {
    this.size = size;
    this.#name = name;
    this.#pointer = pointer;
  }

  /**
   * Maps the descriptor the peer sent (and closes it), after checking that it is a
   * sealed memfd of exactly the announced size: anything else (a file, a pipe, a memfd
   * the peer could shrink) is refused as corrupt.
   */
  static map(fd: number, size: number, name: string): PeerSection {
    const { symbols } = libc();
    try {
      const status = fileStatus(fd, name);
      if ((status.mode & C.S_IFMT) !== C.S_IFREG || status.size !== size) {
        throw CorruptedError.of(
          "ALPC port",
          name,
          "section",
          `(not a memory object of the announced ${size} bytes)`,
        );
      }
      const seals = symbols.fcntl(fd, C.F_GET_SEALS, 0);
      if (seals < 0 || (seals & REQUIRED_SEALS) !== REQUIRED_SEALS) {
        throw CorruptedError.of("ALPC port", name, "section", "(not sealed against resizing)");
      }
      return new PeerSection(size, name, mapShared(fd, size, false, name));
    } finally {
      symbols.close(fd);
    }
  }

  /**
   * A view of `length` bytes at `offset`, checked to lie inside the section; its own
   * buffer, detached by {@link PeerSection.release} or close.
   */
  view(offset: number, length: number): Uint8Array {
    if (this.#closed) throw new Error("section closed");
    if (offset % ALIGNMENT !== 0 || length === 0 || offset + length > this.size) {
      throw CorruptedError.of(
        "ALPC port",
        this.#name,
        "section reference",
        `${offset}+${length} (the section has ${this.size} bytes)`,
      );
    }
    const buffer = Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.offset(this.#pointer, offset)!,
      length,
    );
    this.#views.add(buffer);
    return new Uint8Array(buffer);
  }

  /** Detaches a view: its memory may now be reused by the writer. */
  release(view: Uint8Array): void {
    const buffer = view.buffer as ArrayBuffer;
    if (this.#views.delete(buffer)) buffer.transfer(0);
  }

  /** Detaches every view, then unmaps. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const buffer of this.#views) buffer.transfer(0);
    this.#views.clear();
    libc().symbols.munmap(this.#pointer, BigInt(this.size));
  }
}

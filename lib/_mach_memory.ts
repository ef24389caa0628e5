// Out-of-line memory of Mach messages: a region travels as a sealed memfd instead of
// being copied through the socket. The sender fills a shared mapping, and sending seals
// the memfd (no more writes, no shrinking or growing) after unmapping it, so what the
// receiver maps can never change under it: the "virtual copy". The receiver maps it
// privately (copy-on-write): it may write to its copy, owns the mapping and frees it
// with close(). Like Mach's `deallocate` flag, sending moves the region: the sender's
// view is gone.
import { C, ERRNO } from "../ffi/constants.ts";
import { check, closedError, CorruptedError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { KIND_MEMORY, type WireRight } from "./_mach_wire.ts";
import { cString, validateInteger } from "./_validate.ts";

const WHAT = "out-of-line memory region";
/** The largest out-of-line region, in bytes (16 GiB). */
export const MAX_OUT_OF_LINE = 2 ** 34;
/** Maps an out-of-line region that arrived as `fd` (taken over) for the port `port`. */
export let mapReceivedMemory: (fd: number, port: string) => ReceivedMemory;
const REQUIRED_SEALS = C.F_SEAL_WRITE | C.F_SEAL_SHRINK | C.F_SEAL_GROW;

function mapRegion(fd: number, size: number, flags: number): [Deno.PointerObject, ArrayBuffer] {
  const address = check(
    "mmap",
    libc().symbols.mmap(null, BigInt(size), C.PROT_READ | C.PROT_WRITE, flags, fd, 0n),
    WHAT,
  );
  return [address, Deno.UnsafePointerView.getArrayBuffer(address, size)];
}

// Detaches the buffer before unmapping: touching unmapped memory would kill the process.
// A buffer someone transferred elsewhere still points at the mapping: leave it mapped.
function unmap(address: Deno.PointerObject, buffer: ArrayBuffer, size: number): void {
  if (buffer.detached) return;
  buffer.transfer(0);
  libc().symbols.munmap(address, BigInt(size));
}

/**
 * A region of memory to send out of line in a Mach message (`memory` of
 * {@link OutgoingMessage}): large data travels without being copied through the kernel.
 * Fill {@link bytes}, then send: the send seals the region and moves it (its bytes
 * leave this process, Mach's `deallocate`). Or {@link seal} it first and send it as
 * often as needed: each receiver maps the same sealed pages, nothing is copied.
 *
 * @example One mebibyte out of line
 * ```ts
 * import { OutOfLineMemory, ReceiveRight } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using port = ReceiveRight.allocate();
 * using send = port.makeSend();
 * const region = OutOfLineMemory.allocate(2 ** 20);
 * region.bytes.fill(7);
 * await send.send({ id: 1, memory: [region] });
 * using message = await port.receive({ timeout: 1000 });
 * assert.equal(message.memory[0].bytes.length, 2 ** 20);
 * assert.equal(message.memory[0].bytes[12345], 7);
 * ```
 */
export class OutOfLineMemory implements Disposable {
  readonly #fd: number;
  /** The region's size in bytes. */
  readonly size: number;
  #address: Deno.PointerObject | undefined;
  #buffer: ArrayBuffer | undefined;
  #bytes: Uint8Array | undefined;
  #sealed = false;
  // Sealed by seal(): sending copies it instead of moving it.
  #kept = false;
  #closed = false;

  private constructor(fd: number, size: number) {
    this.#fd = fd;
    this.size = size;
  }

  /** A new zeroed region of `size` bytes (1 to 16 GiB), reserved in memory now. */
  static allocate(size: number): OutOfLineMemory {
    validateInteger(size, "out-of-line region size", 1, MAX_OUT_OF_LINE);
    const { symbols } = libc();
    const fd = check(
      "memfd_create",
      symbols.memfd_create(cString("deno-ipc-mach-ool"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING),
      WHAT,
    );
    try {
      // Reserve the pages: a sparse memfd could SIGBUS a writer when memory runs out.
      check("posix_fallocate", symbols.posix_fallocate(fd, 0n, BigInt(size)), WHAT);
      const region = new OutOfLineMemory(fd, size);
      [region.#address, region.#buffer] = mapRegion(fd, size, C.MAP_SHARED);
      return region;
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
  }

  /** A region holding a copy of `bytes`. */
  static from(bytes: Uint8Array): OutOfLineMemory {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`Invalid bytes: expected a Uint8Array`);
    if (bytes.length === 0) {
      throw new RangeError(`Invalid bytes: an out-of-line region holds at least 1 byte, got 0`);
    }
    const region = OutOfLineMemory.allocate(bytes.length);
    region.bytes.set(bytes);
    return region;
  }

  /**
   * The region's memory: writable (and shared with nobody yet) until the region is
   * sent or sealed. After {@link seal} it is this process's copy-on-write view: writes
   * stay here and never reach a receiver.
   */
  get bytes(): Uint8Array {
    if (this.#closed) throw closedError("use", WHAT, "memfd");
    if (this.#buffer === undefined) {
      throw closedError("use", `${WHAT} (sealed for sending: it belongs to the message)`, "memfd");
    }
    return this.#bytes ??= new Uint8Array(this.#buffer);
  }

  /** Whether the region was sent (moved), or closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the region is sealed: it may then be sent any number of times. */
  get sealed(): boolean {
    return this.#sealed;
  }

  /**
   * Seals the region now: its contents are fixed, and it can be sent any number of
   * times without being moved (Mach's out-of-line copy without `deallocate`). This
   * process keeps a private copy-on-write view in {@link bytes}.
   */
  seal(): void {
    if (this.#closed) throw closedError("seal", WHAT, "memfd");
    if (this.#sealed) return;
    this.#sealNow();
    this.#kept = true;
    [this.#address, this.#buffer] = mapRegion(this.#fd, this.size, C.MAP_PRIVATE);
  }

  #sealNow(): void {
    this.#bytes = undefined;
    unmap(this.#address!, this.#buffer!, this.size);
    this.#buffer = undefined;
    this.#address = undefined;
    this.#sealed = true;
    check(
      "fcntl",
      libc().symbols.fcntl(this.#fd, C.F_ADD_SEALS, REQUIRED_SEALS | C.F_SEAL_SEAL),
      WHAT,
    );
  }

  /** @internal Seals the region if needed; its wire form (the kernel copies the fd). */
  wire(role: number): WireRight {
    if (this.#closed) throw closedError("send", WHAT, "memfd");
    if (!this.#sealed) this.#sealNow();
    return { kind: KIND_MEMORY, role, fds: [this.#fd], onceId: 0 };
  }

  /** @internal The region went out in a message: a region not sealed beforehand moves. */
  consume(): void {
    if (!this.#kept) this.close();
  }

  /** Frees the region (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#bytes = undefined;
    if (this.#buffer) unmap(this.#address!, this.#buffer, this.size);
    this.#buffer = undefined;
    this.#address = undefined;
    libc().symbols.close(this.#fd);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * An out-of-line region received in a message: a private copy-on-write mapping this
 * process owns. Writing changes only this copy. {@link close} unmaps it; the bytes are
 * then detached (reading them gives nothing, never a crash).
 */
export class ReceivedMemory implements Disposable {
  readonly #address: Deno.PointerObject;
  readonly #buffer: ArrayBuffer;
  /** The region's size in bytes. */
  readonly size: number;
  /** The region's memory (a view of the mapping). */
  readonly bytes: Uint8Array;
  #closed = false;

  static {
    mapReceivedMemory = (fd, port) => new ReceivedMemory(fd, port);
  }

  // Maps a region that arrived as `fd` (taken over and closed here). Private: it would
  // close whatever descriptor it was given.
  private constructor(fd: number, port: string) {
    const { symbols } = libc();
    try {
      // Seals first: a size read before them could change (shrink, then seal) under
      // the mapping, and touching pages past the end would kill this process.
      const seals = symbols.fcntl(fd, C.F_GET_SEALS, 0);
      const sealsErrno = seals < 0 ? lastErrno() : 0;
      const status = new Uint8Array(C.SIZEOF_STAT);
      check("fstat", symbols.fstat(fd, status), WHAT);
      const view = new DataView(status.buffer);
      const size = Number(view.getBigInt64(C.STAT_OFFSET_SIZE, true));
      const mode = view.getUint32(C.STAT_OFFSET_MODE, true);
      if (
        (mode & C.S_IFMT) !== C.S_IFREG || seals < 0 || (seals & REQUIRED_SEALS) !== REQUIRED_SEALS
      ) {
        throw CorruptedError.of(
          "Mach message on port",
          port,
          "out-of-line region",
          sealsErrno === ERRNO.EINVAL
            ? "is not a sealable memfd"
            : "is not sealed against writes and resizing",
        );
      }
      if (size < 1 || size > MAX_OUT_OF_LINE) {
        throw CorruptedError.of("Mach message on port", port, "out-of-line size", String(size));
      }
      this.size = size;
      [this.#address, this.#buffer] = mapRegion(fd, size, C.MAP_PRIVATE);
      this.bytes = new Uint8Array(this.#buffer);
    } finally {
      symbols.close(fd);
    }
  }

  /** Unmaps the region (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unmap(this.#address, this.#buffer, this.size);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// The message count of a Mach port's queue. A socket buffer counts bytes, not messages,
// so the port's queue limit is kept in a small shared table (a memfd every right of the
// port maps): one word per slot, and a message occupies a slot from the moment its
// sender claims it until the receiver takes the message. A queue is full when every
// slot below the limit is taken.
//
// A sender killed between claiming a slot and sending must not shrink the queue for
// good. So a sender holds an open-file-description lock on its slot's byte while it
// claims and sends (each process opens its own description of the memfd); the kernel
// drops that lock when the process dies. The receiver, finding a taken slot whose
// message it does not hold, checks the lock FIRST and only then drains the socket: an
// unlocked slot's message, if it was ever sent, was sent before the unlock, so after the
// drain it is either held or was never sent, and then the slot is free again.
//
// Send-once messages (replies) take no slot: Mach never refuses them for a full queue.
// A sender may also force one "cached" message into a full queue: those take one of the
// CACHED_SLOTS entries, which hold the sender's pid (one per sender per port).
import { C, ERRNO } from "../ffi/constants.ts";
import { check, CorruptedError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { FutexFlag } from "./_futex.ts";
import { step } from "./_steps.ts";
import { cString } from "./_validate.ts";

/** Mach's default queue limit (MACH_PORT_QLIMIT_BASIC). */
export const DEFAULT_QUEUE_LIMIT = 5;
/** The largest queue limit (XNU's MACH_PORT_QLIMIT_LARGE). */
export const MAX_QUEUE_LIMIT = 1024;
/** Cached (forced) messages one port can hold at once, one per sending process. */
export const CACHED_SLOTS = 64;

const STATE_MAGIC = 0x5154504d; // "MPTQ"
const WORD_MAGIC = 0;
const WORD_LIMIT = 1;
const WORD_DEAD = 2;
const WORD_WAITERS = 3;
const FIRST_SLOT = 16;
const SLOT_COUNT = MAX_QUEUE_LIMIT + CACHED_SLOTS;
const STATE_SIZE = 8192;
/** A free slot the receiver keeps closed while messages sit above a lowered limit. */
const RESERVED = -1;
// Every right maps the table: one that could shrink it would SIGBUS the others.
const TABLE_SEALS = C.F_SEAL_SHRINK | C.F_SEAL_GROW;

/** A mapping of a port's queue table. */
export class QueueTable {
  readonly fd: number;
  readonly #words: Int32Array;
  readonly #address: Deno.PointerObject;
  readonly #flag: FutexFlag;
  readonly #lock = new Uint8Array(C.SIZEOF_FLOCK);
  readonly #lockView = new DataView(this.#lock.buffer);
  readonly #what: string;
  #mapping: ArrayBuffer;
  // The receiver lowered the limit below the queue: slots are being rebalanced.
  #rebalancing = false;
  #hint = 0;
  // This process's own open file description of the table, for slot locks.
  #lockFd: number;

  private constructor(fd: number, lockFd: number, what: string) {
    this.fd = fd;
    this.#lockFd = lockFd;
    this.#what = what;
    const { symbols } = libc();
    this.#address = check(
      "mmap",
      symbols.mmap(null, BigInt(STATE_SIZE), C.PROT_READ | C.PROT_WRITE, C.MAP_SHARED, fd, 0n),
      what,
    );
    this.#mapping = Deno.UnsafePointerView.getArrayBuffer(this.#address, STATE_SIZE);
    this.#words = new Int32Array(this.#mapping);
    this.#flag = new FutexFlag(
      this.#words,
      WORD_WAITERS,
      Deno.UnsafePointer.offset(this.#address, WORD_WAITERS * 4)!,
    );
  }

  /** Creates the table of a new port (the receiver's side). */
  static create(limit: number, what: string): QueueTable {
    const { symbols } = libc();
    const fd = check(
      "memfd_create",
      symbols.memfd_create(cString("deno-ipc-mach-port"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING),
      what,
    );
    try {
      check("ftruncate", symbols.ftruncate(fd, BigInt(STATE_SIZE)), what);
      check("fcntl", symbols.fcntl(fd, C.F_ADD_SEALS, TABLE_SEALS | C.F_SEAL_SEAL), what);
      const table = new QueueTable(fd, fd, what);
      table.#words[WORD_LIMIT] = limit;
      Atomics.store(table.#words, WORD_MAGIC, STATE_MAGIC);
      return table;
    } catch (error) {
      symbols.close(fd);
      throw error;
    }
  }

  /**
   * Maps the table of a port whose send right arrived as `fd` (taken over). Its own
   * open file description keeps this process's slot locks apart from everyone else's.
   */
  static attach(fd: number, what: string): QueueTable {
    const { symbols } = libc();
    let lockFd = -1;
    try {
      // Sealed against resizing (so the size read next stays), or its maker could
      // truncate it under our mapping.
      const seals = symbols.fcntl(fd, C.F_GET_SEALS, 0);
      if (seals < 0 || (seals & TABLE_SEALS) !== TABLE_SEALS) {
        throw CorruptedError.of("Mach port", what, "queue table", "is not sealed against resizing");
      }
      const status = new Uint8Array(C.SIZEOF_STAT);
      check("fstat", symbols.fstat(fd, status), what);
      const size = new DataView(status.buffer).getBigInt64(C.STAT_OFFSET_SIZE, true);
      if (size !== BigInt(STATE_SIZE)) {
        throw CorruptedError.of("Mach port", what, "queue table size", String(size));
      }
      lockFd = check(
        "open",
        symbols.open(cString(`/proc/self/fd/${fd}`), C.O_RDWR | C.O_CLOEXEC, 0),
        what,
      );
      const table = new QueueTable(fd, lockFd, what);
      // A receive right that moved here may have slots to rebalance (see setLimit).
      table.#rebalancing = true;
      if (Atomics.load(table.#words, WORD_MAGIC) !== STATE_MAGIC) {
        table.close(); // closes both descriptors: not again below
        lockFd = -2;
        throw CorruptedError.of("Mach port", what, "queue table magic", "");
      }
      return table;
    } catch (error) {
      if (lockFd >= 0) symbols.close(lockFd);
      if (lockFd !== -2) symbols.close(fd);
      throw error;
    }
  }

  /** The queue limit the receiver set (validated: the table is shared with senders). */
  get limit(): number {
    const limit = Atomics.load(this.#words, WORD_LIMIT);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUEUE_LIMIT) {
      throw CorruptedError.of("Mach port", this.#what, "queue limit", String(limit));
    }
    return limit;
  }

  /**
   * Sets the limit (receiver only); senders waiting for room look again. Messages
   * already queued above a lowered limit stay, and count: the receiver closes as many
   * free slots below the limit (RESERVED) as there are messages above it, and opens
   * them again as those messages leave, so the queue never takes more than the limit.
   */
  setLimit(limit: number): void {
    const old = this.limit;
    if (limit < old) {
      // Close every free slot first, so that no sender claims one while we count.
      for (let i = 0; i < old; i++) {
        Atomics.compareExchange(this.#words, FIRST_SLOT + i, 0, RESERVED);
      }
    }
    Atomics.store(this.#words, WORD_LIMIT, limit);
    this.#rebalancing = true;
    this.#rebalance();
    this.#flag.wake();
  }

  // Keeps (reserved slots below the limit) = (messages at or above it), as far as free
  // slots allow. Only the receiver reserves and opens slots.
  #rebalance(): void {
    const limit = this.limit;
    let above = 0;
    for (let i = limit; i < MAX_QUEUE_LIMIT; i++) {
      const value = Atomics.load(this.#words, FIRST_SLOT + i);
      if (value === RESERVED) Atomics.store(this.#words, FIRST_SLOT + i, 0);
      else if (value !== 0) above++;
    }
    let reserved = 0;
    for (let i = 0; i < limit; i++) {
      if (Atomics.load(this.#words, FIRST_SLOT + i) === RESERVED) reserved++;
    }
    for (let i = 0; i < limit && reserved > above; i++) {
      if (Atomics.load(this.#words, FIRST_SLOT + i) === RESERVED) {
        Atomics.store(this.#words, FIRST_SLOT + i, 0);
        reserved--;
      }
    }
    for (let i = 0; i < limit && reserved < above; i++) {
      if (Atomics.compareExchange(this.#words, FIRST_SLOT + i, 0, RESERVED) === 0) reserved++;
    }
    if (above === 0 && reserved === 0) this.#rebalancing = false;
  }

  /** Whether the receiver closed the port (a crashed one is seen through the socket). */
  get dead(): boolean {
    return Atomics.load(this.#words, WORD_DEAD) !== 0;
  }

  /** Marks the port dead and wakes every waiting sender (receiver's close). */
  markDead(): void {
    Atomics.store(this.#words, WORD_DEAD, 1);
    this.#flag.wake();
  }

  /** The flag senders sleep on while the queue is full. */
  get flag(): FutexFlag {
    return this.#flag;
  }

  /** Messages counted in the queue (taken slots below MAX_QUEUE_LIMIT). */
  get count(): number {
    let count = 0;
    for (let i = 0; i < MAX_QUEUE_LIMIT; i++) {
      const value = Atomics.load(this.#words, FIRST_SLOT + i);
      if (value !== 0 && value !== RESERVED) count++;
    }
    return count;
  }

  /** Whether a slot below the limit is free now (for a sleeping sender's re-check). */
  hasRoom(): boolean {
    const limit = this.limit;
    for (let i = 0; i < limit; i++) {
      if (Atomics.load(this.#words, FIRST_SLOT + i) === 0) return true;
    }
    return false;
  }

  /**
   * Claims a free slot below the limit, locked by this process: its index, or -1 when
   * the queue is full. The caller sends, then calls {@link unlock}.
   */
  claim(): number {
    const limit = this.limit;
    // Start after the slot claimed last: with a long queue, the slots before it are
    // likely still taken.
    for (let n = 0; n < limit; n++) {
      const i = (this.#hint + n) % limit;
      if (this.#claimSlot(i, 1)) {
        this.#hint = i + 1;
        return i;
      }
    }
    return -1;
  }

  /**
   * Claims a cached-message entry for `pid`: its slot index; -1 when none is free;
   * -2 when `pid` already has one (notify in progress).
   */
  claimCached(pid: number): number {
    for (let j = 0; j < CACHED_SLOTS; j++) {
      if (Atomics.load(this.#words, FIRST_SLOT + MAX_QUEUE_LIMIT + j) === pid) return -2;
    }
    for (let j = 0; j < CACHED_SLOTS; j++) {
      if (this.#claimSlot(MAX_QUEUE_LIMIT + j, pid)) return MAX_QUEUE_LIMIT + j;
    }
    return -1;
  }

  #claimSlot(slot: number, value: number): boolean {
    const word = FIRST_SLOT + slot;
    if (Atomics.load(this.#words, word) !== 0) return false;
    if (!this.#setLock(this.#lockFd, C.F_OFD_SETLK, C.F_WRLCK, slot)) return false;
    if (Atomics.compareExchange(this.#words, word, 0, value) === 0) {
      step("mach.send.claimed");
      return true;
    }
    this.unlock(slot);
    return false;
  }

  /** Ends this process's claim on `slot` (after its message was sent, or given up). */
  unlock(slot: number): void {
    this.#setLock(this.#lockFd, C.F_OFD_SETLK, C.F_UNLCK, slot);
  }

  /** Gives up a claimed slot whose message was never sent. */
  abandon(slot: number): void {
    Atomics.store(this.#words, FIRST_SLOT + slot, 0);
    this.unlock(slot);
    this.#flag.wake();
  }

  /** Frees `slot` once its message left the queue (receiver); wakes waiting senders. */
  release(slot: number): void {
    Atomics.store(this.#words, FIRST_SLOT + slot, 0);
    if (this.#rebalancing) this.#rebalance();
    this.#flag.wake();
  }

  /** Whether any cached message is waiting beyond the limit. */
  hasCached(): boolean {
    for (let j = 0; j < CACHED_SLOTS; j++) {
      if (Atomics.load(this.#words, FIRST_SLOT + MAX_QUEUE_LIMIT + j) !== 0) return true;
    }
    return false;
  }

  /**
   * Takes a free slot below the limit for a cached message the receiver holds (so it
   * now counts as queued): its index, or -1 when the queue is full. No lock: only the
   * receiver frees it, and if the receiver dies the port dies with it.
   */
  claimForReceiver(): number {
    const limit = this.limit;
    for (let i = 0; i < limit; i++) {
      if (Atomics.compareExchange(this.#words, FIRST_SLOT + i, 0, 1) === 0) return i;
    }
    return -1;
  }

  /** The pid recorded in a cached-message entry. */
  cachedOwner(slot: number): number {
    return Atomics.load(this.#words, FIRST_SLOT + slot);
  }

  /**
   * Taken slots that no sender is working on now and whose message is not among
   * `held`: candidates for being lost by a dead sender (see the file comment; the caller
   * must drain the socket after this and before freeing them).
   */
  unlockedStrays(held: ReadonlySet<number>): number[] {
    const strays: number[] = [];
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const value = Atomics.load(this.#words, FIRST_SLOT + slot);
      if (value === 0 || value === RESERVED || held.has(slot)) continue;
      if (!this.#locked(slot)) strays.push(slot);
    }
    return strays;
  }

  /** Whether a valid slot index (from a packet: untrusted). */
  static validSlot(slot: number): boolean {
    return Number.isInteger(slot) && slot >= 0 && slot < SLOT_COUNT;
  }

  /** Whether `slot` is a cached-message entry. */
  static isCached(slot: number): boolean {
    return slot >= MAX_QUEUE_LIMIT && slot < SLOT_COUNT;
  }

  #locked(slot: number): boolean {
    const view = this.#lockView;
    this.#fillLock(C.F_WRLCK, slot);
    check("fcntl_lock", libc().symbols.fcntl_lock(this.fd, C.F_OFD_GETLK, this.#lock), this.#what);
    return view.getInt16(C.FLOCK_OFFSET_TYPE, true) !== C.F_UNLCK;
  }

  #fillLock(type: number, slot: number): void {
    this.#lock.fill(0);
    const view = this.#lockView;
    view.setInt16(C.FLOCK_OFFSET_TYPE, type, true);
    view.setInt16(C.FLOCK_OFFSET_WHENCE, C.SEEK_SET, true);
    view.setBigInt64(C.FLOCK_OFFSET_START, BigInt(slot), true);
    view.setBigInt64(C.FLOCK_OFFSET_LEN, 1n, true);
  }

  #setLock(fd: number, command: number, type: number, slot: number): boolean {
    this.#fillLock(type, slot);
    if (libc().symbols.fcntl_lock(fd, command, this.#lock) === 0) return true;
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EACCES) return false;
    check("fcntl_lock", -1, this.#what);
    return false;
  }

  /** Unmaps the table and closes its descriptors (detaching the view first). */
  close(): void {
    const { symbols } = libc();
    this.#mapping.transfer(0);
    symbols.munmap(this.#address, BigInt(STATE_SIZE));
    if (this.#lockFd !== this.fd) symbols.close(this.#lockFd);
    symbols.close(this.fd);
    this.#lockFd = -1;
  }
}

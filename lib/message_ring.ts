/**
 * A fast message ring in shared memory: variable-length messages between processes,
 * with a lock-free single-producer single-consumer path and an optional
 * multi-producer / multi-consumer mode.
 *
 * @module
 */
import { closedError, CorruptedError, streamEndedError } from "../ffi/errno.ts";
import { FutexFlag, futexWaitable } from "./_futex.ts";
import { openLayout } from "./_layout.ts";
import { Lifetime } from "./_lifetime.ts";
import { allocateMessage, POOL_MESSAGE_MAX, poolWords } from "./_pool.ts";
import { currentProcessToken, PidLock, tokenAlive } from "./_process.ts";
import { step, stepping } from "./_steps.ts";
import { testing } from "./_testing.ts";
import {
  DEFAULT_MODE,
  SHM_NAME_MAX,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";
import { PENDING, untilDefined, type Waitable, waitFor, type WaitOptions } from "./_wait.ts";
import { Channel } from "./channel.ts";
import { SharedMemory } from "./shared_memory.ts";

/** Options of {@link MessageRing.create}. */
export interface MessageRingCreateOptions {
  /** Name such as `"/my-ring"`. Default: a fresh random name. */
  name?: string;
  /** Bytes for messages, rounded up to a power of two (at least 64, at most 2^30). */
  capacity: number;
  /** Allow several processes (or handles) to send at once. Default: false. */
  multiProducer?: boolean;
  /** Allow several processes (or handles) to receive at once. Default: false. */
  multiConsumer?: boolean;
  /**
   * How many producers end the stream: it ends once that many have called `end()` or
   * died (see {@link MessageRing}). `0`: the stream never ends and no producer is
   * tracked. Default: 1, at most 4096.
   */
  producers?: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/** Options of {@link MessageRing.open}. */
export interface MessageRingOpenOptions {
  /** Name of an existing ring. */
  name: string;
}

const WHAT = "message ring";
const MAGIC = 0x52_50_49_44; // "DIPR"
const VERSION = 3;

// Layout. Words that different processes write sit on separate 64-byte cache lines.
const I_MAGIC = 0;
const I_VERSION = 1;
const I_CAPACITY = 2;
const I_FLAGS = 3;
const I_PRODUCERS = 4;
const I_HANDLES = 5; // handles opened so far: each takes the next number as its id
const I_HEAD = 16; // byte 64: where the next record goes (bytes sent, mod 2^32)
const I_LAST_SENDER = 17; // id of the handle that moved the head last
const I_TAIL = 32; // byte 128: where the next unread record is (bytes received, mod 2^32)
const I_LAST_RECEIVER = 33; // id of the handle that moved the tail last
const I_SEND_LOCK = 48; // byte 192: 64-bit token of the sending process (multi-producer only)
const I_RECEIVE_LOCK = 64; // byte 256: 64-bit token of the receiving process (multi-consumer)
const I_SEND_WAITING = 80; // byte 320: futex flag: a sender sleeps until room is made
const I_RECEIVE_WAITING = 96; // byte 384: futex flag: a receiver sleeps until a message
const I_ENDED = 112; // byte 448: producer slots that ended (by end() or by death)
const HEADER_BYTES = 512;
// After the header: one 64-bit slot per producer (see #claimProducerSlot), then the data.
const SLOT_FREE = 0n;
const SLOT_ENDED = -1n;
const MAX_PRODUCERS = 4096;
// A receiver that finds the ring empty looks at a few producer slots (round-robin) every
// so many empty attempts, and whenever it is about to sleep, but at most once per
// PRODUCER_LOOK_MS: the work per look is bounded, looking costs nothing on the path that
// finds messages, and a receiver that waits for every message (a round trip) does not
// read /proc for every one of them.
const EMPTY_ATTEMPTS_PER_LOOK = 256;
const SLOTS_PER_LOOK = 16;
const PRODUCER_LOOK_MS = 5;

function slotTableBytes(producers: number): number {
  return Math.ceil((producers * 8) / 64) * 64;
}

const FLAG_MULTI_PRODUCER = 1;
const FLAG_MULTI_CONSUMER = 2;

// A record: [u32 length][u32 unused][payload, padded to 8 bytes]. The header never
// wraps (8-aligned in a power-of-two ring); the payload may, and is then copied in two
// parts.
const RECORD_HEADER = 8;
const MIN_CAPACITY = 64;
const MAX_CAPACITY = 2 ** 30;

// Attempts made before setting up a wait: the other side is usually less than a
// message behind, and setting up a wait costs more than a few attempts.
const QUICK_RETRIES = 32;

// Returned by every send that completes at once: no promise allocated per message.
const SENT: Promise<void> = Promise.resolve();

// Up to this many bytes, a plain loop copies faster than set() with a subarray.
const SMALL_COPY = 128;

function recordSize(length: number): number {
  return (RECORD_HEADER + length + 7) & ~7;
}

// What a handle takes from the header once, when it opens: later changes by another
// process never resize or reshape this handle's view.
interface Shape {
  capacity: number;
  flags: number;
  producers: number;
}

// Reads and checks the header of a region that carries the ring's magic and version.
function readShape(shm: SharedMemory): Shape {
  const words = shm.view(Int32Array, 0, HEADER_BYTES / 4);
  const capacity = words[I_CAPACITY];
  const flags = words[I_FLAGS];
  const producers = words[I_PRODUCERS];
  const corrupted = (field: string, detail: string) =>
    CorruptedError.of(WHAT, shm.name, field, detail);
  if (
    !(capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY && (capacity & (capacity - 1)) === 0)
  ) {
    throw corrupted("capacity", `${capacity} is not a power of two from 64 to 2^30`);
  }
  if ((flags & ~(FLAG_MULTI_PRODUCER | FLAG_MULTI_CONSUMER)) !== 0) {
    throw corrupted("flags", `0x${(flags >>> 0).toString(16)} has unknown bits`);
  }
  if (!(producers >= 0 && producers <= MAX_PRODUCERS)) {
    throw corrupted("producers", `${producers} is not from 0 to ${MAX_PRODUCERS}`);
  }
  const size = HEADER_BYTES + slotTableBytes(producers) + capacity;
  if (shm.size < size) {
    throw corrupted("size", `${shm.size} bytes, the header says ${size}`);
  }
  return { capacity, flags, producers };
}

/**
 * A ring buffer of variable-length messages in POSIX shared memory.
 *
 * One process creates it, others open it by name (any processes, not only parent and
 * child). A message becomes visible to receivers only when it is completely written:
 * a sender killed in the middle of a write never exposes a partial message. Receivers
 * copy each message out, so a received `Uint8Array` stays valid after the ring moves on.
 *
 * By default there is one sender and one receiver at a time (lock-free). With
 * `multiProducer` / `multiConsumer`, each side takes a short lock held only while
 * copying one message; a process killed holding it is detected by pid and start time
 * (so neither a zombie nor a reused pid keeps it) and the lock is taken over.
 *
 * Crashes: a sender killed at any moment loses at most the message it was sending,
 * which no receiver ever sees in part. A receiver killed after taking a message from
 * the ring and before its caller got it loses that message; no other message is lost
 * or received twice. The stream ends once `producers` producers have called `end()` or
 * died: a producer is a handle that sent or ended (the first `producers` such handles
 * are tracked, by pid and start time), and a receiver that finds the ring empty notices
 * a dead one within about 10 ms, or within one wait slice while it sleeps.
 *
 * Waiting: a short spin on this thread, a few `sched_yield()`, then futex(2) sleeps on
 * Deno's thread pool in slices of at most 100 ms.
 *
 * @example Two handles, as two processes would use it
 * ```ts
 * import { MessageRing } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using producer = MessageRing.create({ capacity: 1024 });
 * try {
 *   using consumer = MessageRing.open({ name: producer.name });
 *   await producer.send(new Uint8Array([1, 2, 3]));
 *   assert.deepEqual(await consumer.receive({ timeout: 1000 }), new Uint8Array([1, 2, 3]));
 *   assert.equal(consumer.tryReceive(), undefined);
 *   producer.end();
 *   assert.equal(await consumer.receive(), null);
 * } finally {
 *   producer.unlink();
 * }
 * ```
 */
export class MessageRing extends Channel {
  readonly #shm: SharedMemory;
  readonly #lifetime: Lifetime;
  readonly #words: Int32Array;
  readonly #data: Uint8Array;
  readonly #dataWords: Int32Array;
  readonly #capacity: number;
  readonly #mask: number;
  readonly #producers: number;
  readonly #sendLock: PidLock | undefined;
  readonly #receiveLock: PidLock | undefined;
  readonly #sendWaiting: FutexFlag;
  readonly #receiveWaiting: FutexFlag;
  #taken: Uint8Array | undefined;
  #targetBytes: Uint8Array | undefined;
  #targetWords: Int32Array | undefined;
  readonly #slots: BigInt64Array;
  readonly #id: number;
  #cachedTail = 0;
  #cachedHead = 0;
  #slot = -1; // this handle's producer slot, once it sent or ended
  #emptyAttempts = 0;
  #lastProducerLook = -Infinity;
  #nextSlot = 0; // where the next look for dead producers starts
  #ended = false;

  private constructor(shm: SharedMemory, shape: Shape) {
    super();
    this.#shm = shm;
    this.#lifetime = new Lifetime(() => shm.close());
    const words = shm.view(Int32Array, 0, HEADER_BYTES / 4);
    this.#words = words;
    this.#capacity = shape.capacity;
    this.#mask = this.#capacity - 1;
    this.#producers = shape.producers;
    const tableBytes = slotTableBytes(this.#producers);
    this.#slots = shm.view(BigInt64Array, HEADER_BYTES, this.#producers);
    this.#data = shm.view(Uint8Array, HEADER_BYTES + tableBytes, this.#capacity);
    this.#dataWords = shm.view(Int32Array, HEADER_BYTES + tableBytes, this.#capacity / 4);
    // Ids start at 1 (0 means no handle yet); after 2^32 opens they would repeat.
    let id = (Atomics.add(words, I_HANDLES, 1) + 1) | 0;
    if (id === 0) id = (Atomics.add(words, I_HANDLES, 1) + 1) | 0;
    this.#id = id;
    const flags = shape.flags;
    const lockWords = shm.view(BigInt64Array, 0, HEADER_BYTES / 8);
    this.#sendLock = flags & FLAG_MULTI_PRODUCER
      ? new PidLock(lockWords, I_SEND_LOCK / 2)
      : undefined;
    this.#receiveLock = flags & FLAG_MULTI_CONSUMER
      ? new PidLock(lockWords, I_RECEIVE_LOCK / 2)
      : undefined;
    const flag = (index: number) => new FutexFlag(words, index, shm.unsafePointer(index * 4));
    this.#sendWaiting = flag(I_SEND_WAITING);
    this.#receiveWaiting = flag(I_RECEIVE_WAITING);
    this.#cachedTail = Atomics.load(words, I_TAIL) >>> 0;
    this.#cachedHead = Atomics.load(words, I_HEAD) >>> 0;
  }

  /**
   * Creates a ring exclusively (`AlreadyExistsError` if the name is taken).
   *
   * @example A ring for several producers
   * ```ts
   * import { MessageRing } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using ring = MessageRing.create({ capacity: 5000, multiProducer: true, producers: 2 });
   * try {
   *   assert.equal(ring.capacity, 8192);
   *   assert.equal(ring.maxMessageSize, 8184);
   * } finally {
   *   ring.unlink();
   * }
   * ```
   */
  static create(options: MessageRingCreateOptions): MessageRing {
    const checked = validateOptions<MessageRingCreateOptions>(options, WHAT);
    if (checked.name !== undefined) validatePosixName(checked.name, WHAT, SHM_NAME_MAX);
    const requested = validateInteger(checked.capacity, `${WHAT} capacity`, 1, MAX_CAPACITY);
    const capacity = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(requested)));
    const producers = validateInteger(
      checked.producers ?? 1,
      "number of producers",
      0,
      MAX_PRODUCERS,
    );
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    for (const key of ["multiProducer", "multiConsumer"] as const) {
      if (checked[key] !== undefined && typeof checked[key] !== "boolean") {
        throw new TypeError(`Invalid ${WHAT} option ${key}: expected a boolean`);
      }
    }
    const size = HEADER_BYTES + slotTableBytes(producers) + capacity;
    const shm = SharedMemory.create({
      name: checked.name,
      size,
      mode,
      initialize: (shm) => {
        const words = shm.view(Int32Array, 0, HEADER_BYTES / 4);
        words[I_MAGIC] = MAGIC;
        words[I_VERSION] = VERSION;
        const start = testing.ringStartPosition & ~7; // records stay 8-aligned
        words[I_HEAD] = start;
        words[I_TAIL] = start;
        words[I_CAPACITY] = capacity;
        words[I_FLAGS] = (checked.multiProducer ? FLAG_MULTI_PRODUCER : 0) |
          (checked.multiConsumer ? FLAG_MULTI_CONSUMER : 0);
        words[I_PRODUCERS] = producers;
      },
    });
    const flags = (checked.multiProducer ? FLAG_MULTI_PRODUCER : 0) |
      (checked.multiConsumer ? FLAG_MULTI_CONSUMER : 0);
    return new MessageRing(shm, { capacity, flags, producers });
  }

  /**
   * Opens an existing ring by name.
   *
   * @example Open by name
   * ```ts
   * import { MessageRing } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using ring = MessageRing.create({ capacity: 256 });
   * try {
   *   using other = MessageRing.open({ name: ring.name });
   *   assert.equal(other.capacity, 256);
   * } finally {
   *   ring.unlink();
   * }
   * ```
   */
  static open(options: MessageRingOpenOptions): MessageRing {
    const shm = openLayout(options, WHAT, (shm) => {
      if (shm.size < HEADER_BYTES) return false;
      const words = shm.view(Int32Array, 0, HEADER_BYTES / 4);
      return Atomics.load(words, I_MAGIC) === MAGIC && words[I_VERSION] === VERSION;
    });
    let shape: Shape;
    try {
      shape = readShape(shm);
    } catch (error) {
      shm.close();
      throw error;
    }
    return new MessageRing(shm, shape);
  }

  /** Removes the ring's name; handles that have it open keep working. */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The ring's name. */
  get name(): string {
    return this.#shm.name;
  }

  /** Whether `close()` was called on this handle. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** Bytes for messages (a power of two). */
  get capacity(): number {
    return this.#capacity;
  }

  /** The largest message that fits: `capacity - 8`. */
  get maxMessageSize(): number {
    return this.#capacity - RECORD_HEADER;
  }

  /** Bytes taken by messages not yet received (each costs 8 + length, rounded to 8). */
  get usedBytes(): number {
    this.#assertOpen("read the state of");
    const used = (Atomics.load(this.#words, I_HEAD) - Atomics.load(this.#words, I_TAIL)) >>> 0;
    if (used > this.#capacity) throw this.#corruptPositions();
    return used;
  }

  /**
   * Sends `message` if there is room now; returns `false` when the ring is full (or, in
   * multi-producer mode, another process is copying a message in this instant).
   */
  trySend(message: Uint8Array): boolean {
    this.#assertOpen("send");
    this.#validateMessage(message);
    return this.#attemptSend(message);
  }

  /**
   * Sends `message`, waiting for room. Rejects with `RangeError` when the message can
   * never fit, `StreamEndedError` after the end, `TimedOutError`, the abort reason, or
   * `ClosedError`.
   */
  send(message: Uint8Array, options?: WaitOptions): Promise<void> {
    try {
      this.#assertOpen("send");
      this.#validateMessage(message);
      const retries = testing.spin ?? QUICK_RETRIES;
      for (let i = 0; i < retries; i++) if (this.#attemptSend(message)) return SENT;
    } catch (error) {
      return Promise.reject(error);
    }
    const need = recordSize(message.length);
    return waitFor(
      this.#waitable(
        "send",
        () => this.#attemptSend(message) ? true : PENDING,
        this.#sendWaiting,
        this.#sendLock,
        () => this.#hasRoom(need),
      ),
      options,
    ).then(() => {});
  }

  /**
   * Receives the next message if there is one: the message, `undefined` when the ring is
   * empty, or `null` once the stream has ended and everything was received.
   */
  tryReceive(): Uint8Array | null | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceive();
  }

  /**
   * Receives the next message, waiting for one; `null` at the end of the stream.
   * Messages up to 1 KiB are cut from a shared 64 KiB chunk (mind `byteOffset` when
   * using `message.buffer`); {@link MessageRing.receiveInto} allocates nothing.
   */
  receive(options?: WaitOptions): Promise<Uint8Array | null> {
    try {
      this.#assertOpen("receive");
    } catch (error) {
      return Promise.reject(error);
    }
    const retries = testing.spin ?? QUICK_RETRIES;
    for (let i = 0; i < retries; i++) {
      const received = this.#attemptReceive();
      if (received !== undefined) return Promise.resolve(received);
    }
    return waitFor(
      this.#waitable(
        "receive",
        untilDefined(() => this.#attemptReceive()),
        this.#receiveWaiting,
        this.#receiveLock,
        () => this.#hasMessageOrEnd(),
      ),
      options,
    );
  }

  /**
   * Receives the next message into `buffer` without allocating: returns its length,
   * `undefined` when the ring is empty, or `null` at the end of the stream. A message
   * longer than `buffer` stays in the ring and this throws a `RangeError`.
   *
   * @example Reusing one buffer
   * ```ts
   * import { MessageRing } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using ring = MessageRing.create({ capacity: 1024 });
   * try {
   *   ring.trySend(new Uint8Array([4, 5, 6]));
   *   const buffer = new Uint8Array(ring.maxMessageSize);
   *   assert.equal(ring.tryReceiveInto(buffer), 3);
   *   assert.deepEqual(buffer.subarray(0, 3), new Uint8Array([4, 5, 6]));
   * } finally {
   *   ring.unlink();
   * }
   * ```
   */
  tryReceiveInto(buffer: Uint8Array): number | null | undefined {
    this.#assertOpen("receive");
    this.#validateTarget(buffer);
    return this.#attemptTake(buffer);
  }

  /** Like {@link MessageRing.tryReceiveInto}, waiting for a message; `null` at the end. */
  receiveInto(buffer: Uint8Array, options?: WaitOptions): Promise<number | null> {
    try {
      this.#assertOpen("receive");
      this.#validateTarget(buffer);
      const retries = testing.spin ?? QUICK_RETRIES;
      for (let i = 0; i < retries; i++) {
        const length = this.#attemptTake(buffer);
        if (length !== undefined) return Promise.resolve(length);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return waitFor(
      this.#waitable(
        "receive",
        untilDefined(() => this.#attemptTake(buffer)),
        this.#receiveWaiting,
        this.#receiveLock,
        () => this.#hasMessageOrEnd(),
      ),
      options,
    );
  }

  /**
   * Ends the stream for this producer. Once `producers` (see
   * {@link MessageRingCreateOptions}) handles have called it, receivers get `null` after
   * the last message. Calling it again on the same handle does nothing.
   */
  end(): void {
    this.#assertOpen("end");
    if (this.#ended) return;
    if (this.#producers > 0) {
      if (this.#slot < 0) this.#claimProducerSlot(SLOT_ENDED);
      else if (this.#slot >= this.#slots.length) Atomics.add(this.#words, I_ENDED, 1);
      else if (Atomics.exchange(this.#slots, this.#slot, SLOT_ENDED) !== SLOT_ENDED) {
        Atomics.add(this.#words, I_ENDED, 1);
      }
    }
    this.#ended = true; // only once the end is counted
    this.#receiveWaiting.wake();
  }

  // Takes the first free producer slot with `value` (this process's token, or ENDED);
  // a handle beyond the first `producers` is not tracked. Ending counts once either way.
  #claimProducerSlot(value: bigint): void {
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i++) {
      if (Atomics.compareExchange(slots, i, SLOT_FREE, value) === SLOT_FREE) {
        this.#slot = i;
        if (value === SLOT_ENDED) Atomics.add(this.#words, I_ENDED, 1);
        return;
      }
    }
    this.#slot = slots.length; // untracked
    if (value === SLOT_ENDED) Atomics.add(this.#words, I_ENDED, 1);
  }

  // Marks the slots of producers that died without ending as ended: SLOTS_PER_LOOK slots
  // per call, round-robin (each costs a /proc read), so a call's work is bounded whatever
  // the number of producers.
  #endDeadProducers(): void {
    const now = performance.now();
    if (now - this.#lastProducerLook < PRODUCER_LOOK_MS) return;
    this.#lastProducerLook = now;
    const slots = this.#slots;
    const count = Math.min(SLOTS_PER_LOOK, slots.length);
    for (let n = 0; n < count; n++) {
      const i = this.#nextSlot;
      this.#nextSlot = i + 1 < slots.length ? i + 1 : 0;
      const value = Atomics.load(slots, i);
      if (value === SLOT_FREE || value === SLOT_ENDED || tokenAlive(value)) continue;
      if (Atomics.compareExchange(slots, i, value, SLOT_ENDED) === value) {
        Atomics.add(this.#words, I_ENDED, 1);
        this.#receiveWaiting.wake();
      }
    }
  }

  /** Releases this handle (the ring stays: see `unlink`). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Removes the ring's name (see {@link MessageRing.unlink}). */
  unlink(): void {
    this.#shm.unlink();
  }

  #corruptPositions(): CorruptedError {
    const head = Atomics.load(this.#words, I_HEAD) >>> 0;
    const tail = Atomics.load(this.#words, I_TAIL) >>> 0;
    return CorruptedError.of(
      WHAT,
      this.name,
      "positions",
      `head ${head} and tail ${tail} (capacity ${this.#capacity}, 8-aligned)`,
    );
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#shm.name);
  }

  #validateMessage(message: Uint8Array): void {
    if (!(message instanceof Uint8Array)) {
      throw new TypeError(`Invalid message: expected a Uint8Array`);
    }
    if (message.length > this.#capacity - RECORD_HEADER) {
      throw new RangeError(
        `Message of ${message.length} bytes does not fit ${WHAT} "${this.name}": ` +
          `the largest is ${this.#capacity - RECORD_HEADER} bytes`,
      );
    }
  }

  // An Int32Array over the same bytes as `target`, kept while callers reuse a buffer.
  #wordsOf(target: Uint8Array): Int32Array {
    if (this.#targetBytes !== target) {
      this.#targetBytes = target;
      this.#targetWords = new Int32Array(target.buffer, target.byteOffset, target.length >> 2);
    }
    return this.#targetWords!;
  }

  #validateTarget(buffer: Uint8Array): void {
    if (!(buffer instanceof Uint8Array)) {
      throw new TypeError("Invalid receive buffer: expected a Uint8Array");
    }
  }

  #fit(buffer: Uint8Array, length: number): void {
    if (length > buffer.length) {
      throw new RangeError(
        `Message of ${length} bytes does not fit a receive buffer of ${buffer.length} bytes ` +
          `(it stays in ${WHAT} "${this.name}")`,
      );
    }
  }

  #streamEnded(): boolean {
    return this.#producers > 0 && Atomics.load(this.#words, I_ENDED) >= this.#producers;
  }

  #hasRoom(need: number): boolean {
    const head = Atomics.load(this.#words, I_HEAD);
    const tail = Atomics.load(this.#words, I_TAIL);
    return this.#capacity - ((head - tail) >>> 0) >= need && !this.#sendLock?.held();
  }

  // While another receiver holds the lock, this one sleeps (its release wakes): even at
  // the end of the stream, the holder may be taking the last message.
  #hasMessageOrEnd(): boolean {
    if (this.#receiveLock?.held()) return false;
    return Atomics.load(this.#words, I_HEAD) !== Atomics.load(this.#words, I_TAIL) ||
      this.#streamEnded();
  }

  #attemptSend(message: Uint8Array): boolean {
    const stepped = stepping; // one load per attempt, not one per step
    // A producer is tracked from its first attempt on, before any step: one that dies at
    // any step of its first send then ends the stream when its death is noticed.
    if (this.#slot < 0 && this.#producers > 0) this.#claimProducerSlot(currentProcessToken());
    if (stepped) step("ring.send.attempt"); // before any message word is touched
    if (this.#ended || this.#streamEnded()) throw streamEndedError(WHAT, this.name);
    const lock = this.#sendLock;
    if (lock && !lock.tryAcquire()) {
      if (stepped) step("ring.send.busy");
      return false;
    }
    let sent = false;
    try {
      if (stepped) step("ring.send.locked");
      const words = this.#words;
      const head = Atomics.load(words, I_HEAD) >>> 0;
      if ((head & 7) !== 0) throw this.#corruptPositions();
      const need = recordSize(message.length);
      // The cached tail is trusted only while this handle was the last to move the
      // head: then the tail has only moved on since it was read. Comparing positions
      // instead would be fooled by other handles moving the head 2^32 bytes.
      // A plain read: only the side's owner (lock holder, or the one producer) writes it,
      // and it read the head atomically just before. Atomics here cost a builtin call.
      const lastSender = words[I_LAST_SENDER];
      if (lastSender !== this.#id || this.#capacity - ((head - this.#cachedTail) >>> 0) < need) {
        this.#cachedTail = Atomics.load(words, I_TAIL) >>> 0;
        if (((head - this.#cachedTail) >>> 0) > this.#capacity) throw this.#corruptPositions();
        if (this.#capacity - ((head - this.#cachedTail) >>> 0) < need) {
          if (stepped) step("ring.send.full");
          return false;
        }
      }
      const at = head & this.#mask;
      this.#dataWords[at >> 2] = message.length;
      if (stepped) step("ring.send.writing"); // a receiver must not see the length before the head moves
      const start = (at + RECORD_HEADER) & this.#mask;
      const first = Math.min(message.length, this.#capacity - start);
      if (first === message.length) {
        this.#data.set(message, start);
      } else {
        this.#data.set(message.subarray(0, first), start);
        this.#data.set(message.subarray(first), 0);
      }
      if (stepped) step("ring.send.copied");
      if (lastSender !== this.#id) Atomics.store(words, I_LAST_SENDER, this.#id);
      // Publishing: everything written above becomes visible with this store.
      Atomics.store(words, I_HEAD, (head + need) | 0);
      sent = true;
      if (stepped) step("ring.send.published");
    } finally {
      lock?.release();
      // Senders may sleep on the lock whatever this attempt did.
      if (lock) {
        if (stepped) step("ring.send.released");
        this.#sendWaiting.wake();
      }
    }
    if (sent) this.#receiveWaiting.wake();
    return sent;
  }

  #attemptReceive(): Uint8Array | null | undefined {
    const length = this.#attemptTake(undefined);
    return typeof length === "number" ? this.#taken : length;
  }

  // Takes the next message into `target` (a too small target throws and leaves the
  // message in the ring), or, without a target, into a new array left in #taken.
  // Returns its length, undefined when there is none now, null at the end.
  #attemptTake(target: Uint8Array | undefined): number | null | undefined {
    const length = this.#take(target);
    // Outside the lock: looking for dead producers reads /proc.
    if (
      length === undefined && this.#producers > 0 &&
      ++this.#emptyAttempts >= EMPTY_ATTEMPTS_PER_LOOK
    ) {
      this.#emptyAttempts = 0;
      this.#endDeadProducers();
    }
    return length;
  }

  #take(target: Uint8Array | undefined): number | null | undefined {
    const stepped = stepping; // one load per attempt, not one per step
    if (stepped) step("ring.receive.attempt"); // before any shared word is touched
    const lock = this.#receiveLock;
    if (lock && !lock.tryAcquire()) {
      if (stepped) step("ring.receive.busy");
      return undefined;
    }
    let length: number | null | undefined;
    let taken = false;
    try {
      if (stepped) step("ring.receive.locked");
      const words = this.#words;
      const tail = Atomics.load(words, I_TAIL) >>> 0;
      if ((tail & 7) !== 0) throw this.#corruptPositions();
      // The cached head proves a message only while it is ahead of the tail, and only
      // while this handle was the last to move the tail: then the head has only moved
      // on since it was read. Comparing positions instead would be fooled by other
      // handles moving the tail 2^32 bytes.
      const lastReceiver = words[I_LAST_RECEIVER]; // plain read, as lastSender
      if (lastReceiver !== this.#id || ((this.#cachedHead - tail) | 0) <= 0) {
        // The end is checked before the head: a producer ends after its last publish.
        const ended = this.#streamEnded();
        this.#cachedHead = Atomics.load(words, I_HEAD) >>> 0;
        if (((this.#cachedHead - tail) >>> 0) > this.#capacity) throw this.#corruptPositions();
        if (this.#cachedHead === tail) {
          if (stepped) step("ring.receive.empty");
          return ended ? null : undefined;
        }
      }
      const at = tail & this.#mask;
      length = this.#dataWords[at >> 2];
      // Checked against what was published before anything is allocated or copied: a
      // length another process wrote must not size an array or move the message pool.
      const published = (this.#cachedHead - tail) >>> 0;
      if (published > this.#capacity) throw this.#corruptPositions();
      if (!(length >= 0 && length <= this.#capacity - RECORD_HEADER)) length = -1;
      if (length < 0 || recordSize(length) > published) {
        throw CorruptedError.of(
          WHAT,
          this.name,
          "record length",
          `${this.#dataWords[at >> 2]} at position ${tail}, with ${published} bytes published`,
        );
      }
      let targetWords: Int32Array | undefined;
      let wordOffset = 0;
      if (target === undefined) {
        target = this.#taken = allocateMessage(length);
        if (length <= POOL_MESSAGE_MAX) {
          targetWords = poolWords; // pooled messages start 8-aligned in the chunk
          wordOffset = target.byteOffset >> 2;
        }
      } else {
        this.#fit(target, length);
        if ((target.byteOffset & 3) === 0 && length <= SMALL_COPY) {
          targetWords = this.#wordsOf(target);
        }
      }
      const start = (at + RECORD_HEADER) & this.#mask;
      const first = Math.min(length, this.#capacity - start);
      const data = this.#data;
      if (first <= SMALL_COPY) {
        // Cheaper than making the subarray that set() needs: whole words where the
        // target is aligned (records are), then the remaining bytes.
        let i = 0;
        if (targetWords !== undefined) {
          const dataWords = this.#dataWords;
          const from = start >> 2;
          for (const end = first >> 2; i < end; i++) {
            targetWords[wordOffset + i] = dataWords[from + i];
          }
          i <<= 2;
        }
        for (; i < first; i++) target[i] = data[start + i];
      } else {
        target.set(data.subarray(start, start + first));
      }
      if (first < length) target.set(data.subarray(0, length - first), first);
      if (stepped) step("ring.receive.copied");
      if (lastReceiver !== this.#id) Atomics.store(words, I_LAST_RECEIVER, this.#id);
      Atomics.store(words, I_TAIL, (tail + recordSize(length)) | 0);
      taken = true;
      if (stepped) step("ring.receive.taken");
    } finally {
      lock?.release();
      // Receivers may sleep on the lock whatever this attempt did (found nothing, or
      // a message too large for the buffer).
      if (lock) {
        if (stepped) step("ring.receive.released");
        this.#receiveWaiting.wake();
      }
    }
    if (taken) this.#sendWaiting.wake();
    return length;
  }

  #waitable<T>(
    operation: string,
    attempt: () => T | typeof PENDING,
    flag: FutexFlag,
    lock: PidLock | undefined,
    ready: () => boolean,
  ): Waitable<T> {
    return futexWaitable({
      lifetime: this.#lifetime,
      operation,
      what: WHAT,
      name: this.name,
      attempt,
      flag,
      ready,
      beforeCheck: () => {
        if (lock?.held()) lock.recoverFromDeadHolder();
        if (operation === "receive" && this.#producers > 0) this.#endDeadProducers();
      },
    });
  }
}

/**
 * The textbook bounded buffer of the producer-consumer problem, in POSIX shared memory,
 * in its two classic forms:
 *
 * - {@link BoundedBuffer}: `buffer[BUFFER_SIZE]` with the indices `in` and `out`, one
 *   producer and one consumer, holding at most `BUFFER_SIZE - 1` items;
 * - {@link SemaphoreBoundedBuffer}: the same array guarded by the counting semaphores
 *   `empty` and `full` and a `mutex`: all `BUFFER_SIZE` slots, any number of producers
 *   and consumers.
 *
 * Items have a fixed size (`itemSize` bytes), like the textbook's `item` struct.
 *
 * @module
 */
import { closedError, CorruptedError, streamEndedError } from "../ffi/errno.ts";
import { FutexFlag, futexWaitable } from "./_futex.ts";
import { openLayout } from "./_layout.ts";
import { Attachment, withLife, writeIdentity } from "./_lifecycle.ts";
import { Lifetime } from "./_lifetime.ts";
import { step } from "./_steps.ts";
import type { OwnershipOptions } from "./_owner.ts";
import {
  DEFAULT_MODE,
  SHM_NAME_MAX,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";
import { PENDING, untilDefined, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";
import { Channel } from "./channel.ts";
import { UnnamedSemaphore } from "./semaphore.ts";
import { SharedMemory } from "./shared_memory.ts";

/** Options of {@link BoundedBuffer.create} and {@link SemaphoreBoundedBuffer.create}. */
export interface BoundedBufferCreateOptions {
  /** Name such as `"/my-buffer"`. Default: a fresh random name. */
  name?: string;
  /** Number of slots, `BUFFER_SIZE` (at least 1; the textbook form needs at least 2). */
  bufferSize: number;
  /** Bytes per item: every item sent must be exactly this long. */
  itemSize: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/**
 * Options of {@link BoundedBuffer.open} and {@link SemaphoreBoundedBuffer.open}: the
 * buffer must belong to this process's uid and give no group/other access, unless the
 * ownership options say otherwise (see {@link SharedMemory.open}).
 */
export interface BoundedBufferOpenOptions extends OwnershipOptions {
  /** Name of an existing buffer. */
  name: string;
}

const MAX_BUFFER_SIZE = 2 ** 20;
const MAX_ITEM_SIZE = 2 ** 20;
// Slots end below 2 GiB: the header keeps the identity block's offset (after the slots)
// in a 32-bit word.
const MAX_BYTES = 2 ** 31 - 1024;

interface Shape {
  name: string | undefined;
  bufferSize: number;
  itemSize: number;
  mode: number;
}

function validateShape(options: unknown, what: string, minimumSlots: number): Shape {
  const checked = validateOptions<BoundedBufferCreateOptions>(options, what);
  const name = checked.name === undefined
    ? undefined
    : validatePosixName(checked.name, what, SHM_NAME_MAX);
  const bufferSize = validateInteger(
    checked.bufferSize,
    "buffer size",
    minimumSlots,
    MAX_BUFFER_SIZE,
  );
  const itemSize = validateInteger(checked.itemSize, "item size", 1, MAX_ITEM_SIZE);
  if (bufferSize * itemSize > MAX_BYTES) {
    throw new RangeError(
      `Invalid ${what}: ${bufferSize} x ${itemSize} bytes is over 2 GiB less 1 KiB`,
    );
  }
  return { name, bufferSize, itemSize, mode: validateMode(checked.mode ?? DEFAULT_MODE, what) };
}

// Checks the shape read from a header (once, on open) against the limits of create.
function checkShape(
  shm: SharedMemory,
  what: string,
  header: number,
  bufferSize: number,
  itemSize: number,
  minimumSlots: number,
): void {
  const corrupted = (field: string, detail: string) =>
    CorruptedError.of(what, shm.name, field, detail);
  if (!(bufferSize >= minimumSlots && bufferSize <= MAX_BUFFER_SIZE)) {
    throw corrupted("buffer size", `${bufferSize}`);
  }
  if (!(itemSize >= 1 && itemSize <= MAX_ITEM_SIZE)) {
    throw corrupted("item size", `${itemSize}`);
  }
  if (shm.size < header + bufferSize * itemSize) {
    throw corrupted("size", `${shm.size} bytes for ${bufferSize} slots of ${itemSize} bytes`);
  }
}

function validateItem(item: Uint8Array, itemSize: number, what: string, name: string): void {
  if (!(item instanceof Uint8Array)) throw new TypeError("Invalid item: expected a Uint8Array");
  if (item.length !== itemSize) {
    throw new RangeError(
      `Invalid item of ${item.length} bytes for ${what} "${name}": items are ${itemSize} bytes`,
    );
  }
}

// ---------------------------------------------------------------------------------------
// The textbook form

const TEXTBOOK = "bounded buffer";
const TEXTBOOK_MAGIC = 0x42_42_49_44; // "DIBB"
const I_MAGIC = 0;
const I_BUFFER_SIZE = 1;
const I_ITEM_SIZE = 2;
const I_ENDED = 3;
const I_LIFE = 4; // byte offset of the identity block (lib/_lifecycle.ts); 0 in older buffers
const I_IN = 16; // byte 64, written by the producer only
const I_OUT = 32; // byte 128, written by the consumer only
const I_PRODUCER_WAITING = 48; // byte 192: futex flag
const I_CONSUMER_WAITING = 64; // byte 256: futex flag
const TEXTBOOK_HEADER = 320;

/**
 * The bounded buffer exactly as the textbook shows it (Silberschatz, OSC, 3.5):
 *
 * ```text
 * #define BUFFER_SIZE 10
 * item buffer[BUFFER_SIZE];
 * int in = 0;   // next free slot, written only by the producer
 * int out = 0;  // first full slot, written only by the consumer
 *
 * producer: while (((in + 1) % BUFFER_SIZE) == out) ;  // full: wait
 *           buffer[in] = next_produced;  in = (in + 1) % BUFFER_SIZE;
 * consumer: while (in == out) ;                        // empty: wait
 *           next_consumed = buffer[out]; out = (out + 1) % BUFFER_SIZE;
 * ```
 *
 * Why one slot stays empty: `in == out` must mean "empty". If the producer could fill
 * the last slot, `in` would catch up with `out` and a full buffer would look exactly like
 * an empty one. So "full" is `(in + 1) % BUFFER_SIZE == out`, and the buffer holds at
 * most `BUFFER_SIZE - 1` items. ({@link SemaphoreBoundedBuffer} counts items instead and
 * uses every slot.)
 *
 * Each index is written by one side only, so no lock is needed, but only for ONE
 * producer and ONE consumer. Instead of spinning in `while (...) ;` forever, a waiting
 * side spins briefly, then sleeps on a futex flag the other side clears after it
 * moves its index. `end()` (not in the textbook) marks the end of the stream.
 *
 * @example The producer waits when BUFFER_SIZE - 1 items are in
 * ```ts
 * import { BoundedBuffer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using buffer = BoundedBuffer.create({ bufferSize: 3, itemSize: 1 });
 * try {
 *   assert.equal(buffer.trySend(new Uint8Array([1])), true);
 *   assert.equal(buffer.trySend(new Uint8Array([2])), true);
 *   assert.equal(buffer.trySend(new Uint8Array([3])), false); // full: (in + 1) % 3 == out
 *   assert.deepEqual([buffer.in, buffer.out, buffer.count], [2, 0, 2]);
 *   assert.deepEqual(buffer.tryReceive(), new Uint8Array([1]));
 * } finally {
 *   buffer.unlink();
 * }
 * ```
 */
export class BoundedBuffer extends Channel {
  readonly #shm: SharedMemory;
  readonly #lifetime: Lifetime;
  readonly #words: Int32Array;
  readonly #slots: Uint8Array;
  readonly #bufferSize: number;
  readonly #itemSize: number;
  readonly #producerWaiting: FutexFlag;
  readonly #consumerWaiting: FutexFlag;

  private constructor(shm: SharedMemory, bufferSize: number, itemSize: number) {
    super();
    this.#shm = shm;
    const words = shm.view(Int32Array, 0, TEXTBOOK_HEADER / 4);
    // Throws NotFoundError when a cleaner is removing the buffer (the caller closes shm).
    const attachment = Attachment.attach(shm, words[I_LIFE], TEXTBOOK);
    this.#lifetime = new Lifetime(() => {
      attachment.detach();
      shm.close();
    });
    this.#words = words;
    this.#bufferSize = bufferSize;
    this.#itemSize = itemSize;
    this.#slots = shm.view(Uint8Array, TEXTBOOK_HEADER, this.#bufferSize * this.#itemSize);
    const flag = (index: number) => new FutexFlag(words, index, shm.unsafePointer(index * 4));
    this.#producerWaiting = flag(I_PRODUCER_WAITING);
    this.#consumerWaiting = flag(I_CONSUMER_WAITING);
  }

  /**
   * Creates a buffer exclusively, with `in = out = 0`.
   *
   * @example Ten slots of 16 bytes
   * ```ts
   * import { BoundedBuffer } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using buffer = BoundedBuffer.create({ bufferSize: 10, itemSize: 16 });
   * try {
   *   assert.equal(buffer.capacity, 9);
   * } finally {
   *   buffer.unlink();
   * }
   * ```
   */
  static create(options: BoundedBufferCreateOptions): BoundedBuffer {
    const shape = validateShape(options, TEXTBOOK, 2);
    const shm = SharedMemory.create({
      name: shape.name,
      size: withLife(TEXTBOOK_HEADER + shape.bufferSize * shape.itemSize),
      mode: shape.mode,
      initialize: (shm) => {
        const words = shm.view(Int32Array, 0, TEXTBOOK_HEADER / 4);
        words[I_BUFFER_SIZE] = shape.bufferSize;
        words[I_ITEM_SIZE] = shape.itemSize;
        words[I_MAGIC] = TEXTBOOK_MAGIC;
        words[I_LIFE] = writeIdentity(shm, "bounded-buffer");
      },
    });
    return new BoundedBuffer(shm, shape.bufferSize, shape.itemSize);
  }

  /**
   * Opens an existing buffer by name.
   *
   * @example Producer and consumer handles
   * ```ts
   * import { BoundedBuffer } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using producer = BoundedBuffer.create({ bufferSize: 4, itemSize: 2 });
   * try {
   *   using consumer = BoundedBuffer.open({ name: producer.name });
   *   await producer.send(new Uint8Array([7, 8]));
   *   assert.deepEqual(await consumer.receive(), new Uint8Array([7, 8]));
   * } finally {
   *   producer.unlink();
   * }
   * ```
   */
  static open(options: BoundedBufferOpenOptions): BoundedBuffer {
    const shm = openLayout(options, TEXTBOOK, (shm) => {
      if (shm.size < TEXTBOOK_HEADER) return false;
      const words = shm.view(Int32Array, 0, TEXTBOOK_HEADER / 4);
      return Atomics.load(words, I_MAGIC) === TEXTBOOK_MAGIC;
    });
    try {
      // Read once: later changes by another process never reshape this handle.
      const words = shm.view(Int32Array, 0, TEXTBOOK_HEADER / 4);
      const [bufferSize, itemSize] = [words[I_BUFFER_SIZE], words[I_ITEM_SIZE]];
      checkShape(shm, TEXTBOOK, TEXTBOOK_HEADER, bufferSize, itemSize, 2);
      return new BoundedBuffer(shm, bufferSize, itemSize);
    } catch (error) {
      shm.close();
      throw error;
    }
  }

  /** Removes the buffer's name; open handles keep working. */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The buffer's name. */
  get name(): string {
    return this.#shm.name;
  }

  /** Whether `close()` was called on this handle. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** `BUFFER_SIZE`: the number of slots. */
  get bufferSize(): number {
    return this.#bufferSize;
  }

  /** Bytes per item. */
  get itemSize(): number {
    return this.#itemSize;
  }

  /** Most items the buffer holds: `BUFFER_SIZE - 1`. */
  get capacity(): number {
    return this.#bufferSize - 1;
  }

  /** The shared index `in`: the next free slot. */
  get in(): number {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, I_IN);
  }

  /** The shared index `out`: the first full slot. */
  get out(): number {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, I_OUT);
  }

  /** Items in the buffer now: `(in - out + BUFFER_SIZE) % BUFFER_SIZE`. */
  get count(): number {
    return (this.in - this.out + this.#bufferSize) % this.#bufferSize;
  }

  /** Whether `end()` was called. */
  get ended(): boolean {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, I_ENDED) !== 0;
  }

  /** Puts `item` at `in` unless the buffer is full (then returns `false`). */
  trySend(item: Uint8Array): boolean {
    this.#assertOpen("send");
    validateItem(item, this.#itemSize, TEXTBOOK, this.name);
    return this.#attemptSend(item);
  }

  /** Puts `item` at `in`, waiting while the buffer is full. */
  async send(item: Uint8Array, options?: WaitOptions): Promise<void> {
    this.#assertOpen("send");
    validateItem(item, this.#itemSize, TEXTBOOK, this.name);
    if (this.#attemptSend(item)) return;
    await waitFor(
      futexWaitable({
        lifetime: this.#lifetime,
        operation: "send",
        what: TEXTBOOK,
        name: this.name,
        attempt: () => this.#attemptSend(item) ? true : PENDING,
        flag: this.#producerWaiting,
        ready: () => this.#notFull() || this.#isEnded(),
      }),
      options,
    );
  }

  /** Takes the item at `out`: `undefined` when empty, `null` when ended and empty. */
  tryReceive(): Uint8Array | null | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceive();
  }

  /** Takes the item at `out`, waiting while the buffer is empty; `null` at the end. */
  async receive(options?: WaitOptions): Promise<Uint8Array | null> {
    this.#assertOpen("receive");
    const item = this.#attemptReceive();
    if (item !== undefined) return item;
    return await waitFor(
      futexWaitable({
        lifetime: this.#lifetime,
        operation: "receive",
        what: TEXTBOOK,
        name: this.name,
        attempt: untilDefined(() => this.#attemptReceive()),
        flag: this.#consumerWaiting,
        ready: () => this.#notEmpty() || this.#isEnded(),
      }),
      options,
    );
  }

  /** Ends the stream: the consumer drains the buffer, then receives `null`. */
  end(): void {
    this.#assertOpen("end");
    Atomics.store(this.#words, I_ENDED, 1);
    this.#consumerWaiting.wake();
    this.#producerWaiting.wake();
  }

  /** Releases this handle (the buffer stays: see `unlink`). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Removes the buffer's name. */
  unlink(): void {
    this.#shm.unlink();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, TEXTBOOK, this.#shm.name);
  }

  #isEnded(): boolean {
    return Atomics.load(this.#words, I_ENDED) !== 0;
  }

  #notFull(): boolean {
    const next = (Atomics.load(this.#words, I_IN) + 1) % this.#bufferSize;
    return next !== Atomics.load(this.#words, I_OUT);
  }

  // An index another process can write, checked before it indexes the slots.
  #index(at: number, field: "in" | "out"): number {
    const value = Atomics.load(this.#words, at);
    if (!(value >= 0 && value < this.#bufferSize)) {
      throw CorruptedError.of(
        TEXTBOOK,
        this.name,
        field,
        `${value} is not a slot index from 0 to ${this.#bufferSize - 1}`,
      );
    }
    return value;
  }

  #notEmpty(): boolean {
    return Atomics.load(this.#words, I_IN) !== Atomics.load(this.#words, I_OUT);
  }

  #attemptSend(item: Uint8Array): boolean {
    step("buffer.send.attempt"); // before any shared word is touched
    if (this.#isEnded()) throw streamEndedError(TEXTBOOK, this.name);
    const words = this.#words;
    const inIndex = this.#index(I_IN, "in");
    const next = (inIndex + 1) % this.#bufferSize;
    if (next === this.#index(I_OUT, "out")) {
      step("buffer.send.full");
      return false; // full
    }
    this.#slots.set(item, inIndex * this.#itemSize); // buffer[in] = next_produced
    step("buffer.send.copied");
    Atomics.store(words, I_IN, next); // in = (in + 1) % BUFFER_SIZE
    step("buffer.send.published");
    this.#consumerWaiting.wake();
    return true;
  }

  // `undefined` when empty, `null` when empty and ended.
  #attemptReceive(): Uint8Array | null | undefined {
    step("buffer.receive.attempt"); // before any shared word is touched
    const words = this.#words;
    const ended = this.#isEnded(); // before `in`: the producer ends after its last item
    const outIndex = this.#index(I_OUT, "out");
    if (this.#index(I_IN, "in") === outIndex) {
      step("buffer.receive.empty");
      return ended ? null : undefined; // empty
    }
    const start = outIndex * this.#itemSize;
    const item = this.#slots.slice(start, start + this.#itemSize); // next_consumed
    step("buffer.receive.copied");
    Atomics.store(words, I_OUT, (outIndex + 1) % this.#bufferSize);
    step("buffer.receive.taken");
    this.#producerWaiting.wake();
    return item;
  }
}

// ---------------------------------------------------------------------------------------
// The semaphore form

const SEMAPHORE_FORM = "semaphore bounded buffer";
const SEMAPHORE_MAGIC = 0x42_53_49_44; // "DISB"
const SEM_EMPTY = 0; // byte offsets of the three semaphores
const SEM_FULL = 32;
const SEM_MUTEX = 64;
const WORDS_AT = 96;
const J_MAGIC = 0;
const J_BUFFER_SIZE = 1;
const J_ITEM_SIZE = 2;
const J_ENDED = 3;
const J_IN = 4;
const J_OUT = 5;
const J_COUNT = 6;
const J_LIFE = 7; // byte offset of the identity block (lib/_lifecycle.ts); 0 in older buffers
const SEMAPHORE_HEADER = 128;
// The mutex is only ever held inside synchronous code, for one item copy. A process
// that dies holding it leaves it locked (the textbook mutex is not robust): waits for
// it then end with their timeout.
const MUTEX_SPIN = 200;

/**
 * The bounded buffer with semaphores (Silberschatz, OSC, 7.1.1):
 *
 * ```text
 * semaphore empty = BUFFER_SIZE, full = 0, mutex = 1;
 * producer: wait(empty); wait(mutex); buffer[in] = item; in = (in + 1) % n;
 *           signal(mutex); signal(full);
 * consumer: wait(full);  wait(mutex); item = buffer[out]; out = (out + 1) % n;
 *           signal(mutex); signal(empty);
 * ```
 *
 * `empty` counts free slots and `full` counts items, so every slot can be used and any
 * number of producers and consumers may share it. The semaphores are unnamed POSIX
 * semaphores inside the same shared memory region. `end()` posts one extra `full`
 * that consumers pass on to each other once the buffer is drained.
 *
 * @example Full capacity
 * ```ts
 * import { SemaphoreBoundedBuffer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using buffer = SemaphoreBoundedBuffer.create({ bufferSize: 2, itemSize: 1 });
 * try {
 *   assert.equal(buffer.trySend(new Uint8Array([1])), true);
 *   assert.equal(buffer.trySend(new Uint8Array([2])), true);
 *   assert.equal(buffer.trySend(new Uint8Array([3])), false);
 *   buffer.end();
 *   const items = [];
 *   for await (const item of buffer) items.push(item[0]);
 *   assert.deepEqual(items, [1, 2]);
 * } finally {
 *   buffer.unlink();
 * }
 * ```
 */
export class SemaphoreBoundedBuffer extends Channel {
  readonly #shm: SharedMemory;
  readonly #lifetime: Lifetime;
  readonly #empty: UnnamedSemaphore;
  readonly #full: UnnamedSemaphore;
  readonly #mutex: UnnamedSemaphore;
  readonly #words: Int32Array;
  readonly #slots: Uint8Array;
  readonly #bufferSize: number;
  readonly #itemSize: number;

  private constructor(
    shm: SharedMemory,
    semaphores: [UnnamedSemaphore, UnnamedSemaphore, UnnamedSemaphore],
    bufferSize: number,
    itemSize: number,
    attachment: Attachment,
  ) {
    super();
    this.#shm = shm;
    [this.#empty, this.#full, this.#mutex] = semaphores;
    this.#lifetime = new Lifetime(() => {
      attachment.detach();
      for (const semaphore of semaphores) semaphore.close();
      shm.close();
    });
    this.#words = shm.view(Int32Array, WORDS_AT, 8);
    this.#bufferSize = bufferSize;
    this.#itemSize = itemSize;
    this.#slots = shm.view(Uint8Array, SEMAPHORE_HEADER, this.#bufferSize * this.#itemSize);
  }

  /**
   * Creates a buffer exclusively: `empty = BUFFER_SIZE`, `full = 0`, `mutex = 1`.
   *
   * @example Create and inspect
   * ```ts
   * import { SemaphoreBoundedBuffer } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using buffer = SemaphoreBoundedBuffer.create({ bufferSize: 5, itemSize: 8 });
   * try {
   *   assert.equal(buffer.capacity, 5);
   * } finally {
   *   buffer.unlink();
   * }
   * ```
   */
  static create(options: BoundedBufferCreateOptions): SemaphoreBoundedBuffer {
    const shape = validateShape(options, SEMAPHORE_FORM, 1);
    let semaphores: [UnnamedSemaphore, UnnamedSemaphore, UnnamedSemaphore] | undefined;
    const shm = SharedMemory.create({
      name: shape.name,
      size: withLife(SEMAPHORE_HEADER + shape.bufferSize * shape.itemSize),
      mode: shape.mode,
      initialize: (shm) => {
        semaphores = [
          UnnamedSemaphore.init(shm, { byteOffset: SEM_EMPTY, value: shape.bufferSize }),
          UnnamedSemaphore.init(shm, { byteOffset: SEM_FULL, value: 0 }),
          UnnamedSemaphore.init(shm, { byteOffset: SEM_MUTEX, value: 1 }),
        ];
        const words = shm.view(Int32Array, WORDS_AT, 8);
        words[J_BUFFER_SIZE] = shape.bufferSize;
        words[J_ITEM_SIZE] = shape.itemSize;
        words[J_MAGIC] = SEMAPHORE_MAGIC;
        words[J_LIFE] = writeIdentity(shm, "semaphore-bounded-buffer");
      },
    });
    const words = shm.view(Int32Array, WORDS_AT, 8);
    return new SemaphoreBoundedBuffer(
      shm,
      semaphores!,
      shape.bufferSize,
      shape.itemSize,
      Attachment.attach(shm, words[J_LIFE], SEMAPHORE_FORM),
    );
  }

  /**
   * Opens an existing buffer by name.
   *
   * @example Open by name
   * ```ts
   * import { SemaphoreBoundedBuffer } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using buffer = SemaphoreBoundedBuffer.create({ bufferSize: 5, itemSize: 8 });
   * try {
   *   using other = SemaphoreBoundedBuffer.open({ name: buffer.name });
   *   assert.equal(other.itemSize, 8);
   * } finally {
   *   buffer.unlink();
   * }
   * ```
   */
  static open(options: BoundedBufferOpenOptions): SemaphoreBoundedBuffer {
    const shm = openLayout(options, SEMAPHORE_FORM, (shm) => {
      if (shm.size < SEMAPHORE_HEADER) return false;
      const words = shm.view(Int32Array, WORDS_AT, 8);
      return Atomics.load(words, J_MAGIC) === SEMAPHORE_MAGIC;
    });
    try {
      // Read once: later changes by another process never reshape this handle.
      const words = shm.view(Int32Array, WORDS_AT, 8);
      const [bufferSize, itemSize] = [words[J_BUFFER_SIZE], words[J_ITEM_SIZE]];
      checkShape(shm, SEMAPHORE_FORM, SEMAPHORE_HEADER, bufferSize, itemSize, 1);
      // Throws NotFoundError when a cleaner is removing the buffer.
      const attachment = Attachment.attach(shm, words[J_LIFE], SEMAPHORE_FORM);
      return new SemaphoreBoundedBuffer(
        shm,
        [
          UnnamedSemaphore.attach(shm, { byteOffset: SEM_EMPTY }),
          UnnamedSemaphore.attach(shm, { byteOffset: SEM_FULL }),
          UnnamedSemaphore.attach(shm, { byteOffset: SEM_MUTEX }),
        ],
        bufferSize,
        itemSize,
        attachment,
      );
    } catch (error) {
      shm.close();
      throw error;
    }
  }

  /** Removes the buffer's name; open handles keep working. */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The buffer's name. */
  get name(): string {
    return this.#shm.name;
  }

  /** Whether `close()` was called on this handle. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** `BUFFER_SIZE`: the number of slots. */
  get bufferSize(): number {
    return this.#bufferSize;
  }

  /** Bytes per item. */
  get itemSize(): number {
    return this.#itemSize;
  }

  /** Most items the buffer holds: all `BUFFER_SIZE` slots. */
  get capacity(): number {
    return this.#bufferSize;
  }

  /** Items in the buffer now. */
  get count(): number {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, J_COUNT);
  }

  /** The shared index `in`. */
  get in(): number {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, J_IN);
  }

  /** The shared index `out`. */
  get out(): number {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, J_OUT);
  }

  /** Whether `end()` was called. */
  get ended(): boolean {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, J_ENDED) !== 0;
  }

  /**
   * Puts `item` in a free slot if that can be done now; `false` when the buffer is full
   * (or, rarely, another process holds the mutex this instant).
   */
  trySend(item: Uint8Array): boolean {
    this.#assertOpen("send");
    validateItem(item, this.#itemSize, SEMAPHORE_FORM, this.name);
    this.#throwIfEnded();
    if (!this.#empty.tryWait()) return false;
    if (!this.#tryLock()) {
      this.#empty.post();
      return false;
    }
    this.#putLocked(item);
    return true;
  }

  /** `wait(empty)`, then puts `item` under the mutex and `signal(full)`. */
  async send(item: Uint8Array, options?: WaitOptions): Promise<void> {
    this.#assertOpen("send");
    validateItem(item, this.#itemSize, SEMAPHORE_FORM, this.name);
    const checked = validateWaitOptions(options);
    this.#throwIfEnded();
    await this.#holding("send", checked, this.#empty, () => this.#putLocked(item));
  }

  // Takes a unit of `first`, then the mutex, then runs `locked`. The handle stays
  // pinned throughout, so a close() in between ends the waits (through `closing`) but
  // never leaves the semaphores closed while a unit or the mutex must be given back:
  // a lost unit or a mutex left taken would stall every process.
  async #holding<T>(
    operation: string,
    options: WaitOptions,
    first: UnnamedSemaphore,
    locked: () => T,
  ): Promise<T> {
    const lifetime = this.#lifetime;
    const started = performance.now();
    const signal = options.signal
      ? AbortSignal.any([options.signal, lifetime.closing])
      : lifetime.closing;
    const closed = (error: unknown) =>
      lifetime.closed && !options.signal?.aborted
        ? closedError(operation, SEMAPHORE_FORM, this.#shm.name)
        : error;
    lifetime.pin();
    try {
      try {
        await first.wait({ timeout: options.timeout, signal });
      } catch (error) {
        throw closed(error);
      }
      try {
        await this.#lock({ timeout: options.timeout, signal }, started);
      } catch (error) {
        first.post();
        throw closed(error);
      }
      return locked();
    } finally {
      lifetime.unpin();
    }
  }

  /**
   * Takes an item if that can be done now: `undefined` when the buffer is empty (or,
   * rarely, another process holds the mutex this instant), `null` at the end.
   */
  tryReceive(): Uint8Array | null | undefined {
    this.#assertOpen("receive");
    if (!this.#full.tryWait()) return undefined;
    if (!this.#tryLock()) {
      this.#full.post();
      return undefined;
    }
    return this.#takeLocked();
  }

  /** `wait(full)`, then takes an item under the mutex and `signal(empty)`. */
  async receive(options?: WaitOptions): Promise<Uint8Array | null> {
    this.#assertOpen("receive");
    const checked = validateWaitOptions(options);
    return await this.#holding("receive", checked, this.#full, () => this.#takeLocked());
  }

  /**
   * Ends the stream: consumers drain the buffer, then receive `null`. It needs no lock:
   * producers check the end under the mutex, and an item put there is counted before
   * any consumer can take the end marker (see `#takeLocked`).
   */
  end(): void {
    this.#assertOpen("end");
    if (Atomics.compareExchange(this.#words, J_ENDED, 0, 1) === 0) {
      this.#full.post(); // the end marker, passed on by each consumer that sees it
    }
  }

  /** Releases this handle (the buffer stays: see `unlink`). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Removes the buffer's name. */
  unlink(): void {
    this.#shm.unlink();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, SEMAPHORE_FORM, this.#shm.name);
  }

  #throwIfEnded(): void {
    if (Atomics.load(this.#words, J_ENDED) !== 0) {
      throw streamEndedError(SEMAPHORE_FORM, this.name);
    }
  }

  // The mutex is held only while one item is copied, so a short spin usually gets it;
  // a holder preempted by the scheduler can keep it for a time slice, hence the wait.
  #tryLock(): boolean {
    for (let i = 0; i < MUTEX_SPIN; i++) if (this.#mutex.tryWait()) return true;
    return false;
  }

  async #lock(options: WaitOptions, started: number): Promise<void> {
    if (this.#tryLock()) return;
    const { timeout, signal } = options;
    const remaining = timeout === undefined
      ? undefined
      : Math.max(0, timeout - (performance.now() - started));
    await this.#mutex.wait({ timeout: remaining, signal });
  }

  #corruptIndex(field: string, value: number): CorruptedError {
    return CorruptedError.of(
      SEMAPHORE_FORM,
      this.name,
      field,
      `${value} is not a slot index from 0 to ${this.#bufferSize - 1}`,
    );
  }

  // Holding the mutex and one unit of `empty`.
  #putLocked(item: Uint8Array): void {
    const words = this.#words;
    if (Atomics.load(words, J_ENDED) !== 0) {
      this.#mutex.post();
      this.#empty.post();
      throw streamEndedError(SEMAPHORE_FORM, this.name);
    }
    const inIndex = words[J_IN];
    if (!(inIndex >= 0 && inIndex < this.#bufferSize)) {
      this.#mutex.post();
      this.#empty.post();
      throw this.#corruptIndex("in", inIndex);
    }
    this.#slots.set(item, inIndex * this.#itemSize);
    words[J_IN] = (inIndex + 1) % this.#bufferSize;
    Atomics.add(words, J_COUNT, 1);
    this.#mutex.post();
    this.#full.post();
  }

  // Holding the mutex and one unit of `full`: an item, or, when no item is counted, the
  // end marker. (Units of `full` are the items put plus the marker; a unit held while
  // the count is 0 proves the marker was posted, so end() came first and every item
  // put before it is counted.)
  #takeLocked(): Uint8Array | null {
    const words = this.#words;
    if (Atomics.load(words, J_COUNT) === 0) {
      this.#mutex.post();
      this.#full.post(); // pass the end marker on to the next consumer
      return null;
    }
    const outIndex = words[J_OUT];
    if (!(outIndex >= 0 && outIndex < this.#bufferSize)) {
      this.#mutex.post();
      this.#full.post();
      throw this.#corruptIndex("out", outIndex);
    }
    const start = outIndex * this.#itemSize;
    const item = this.#slots.slice(start, start + this.#itemSize);
    words[J_OUT] = (outIndex + 1) % this.#bufferSize;
    Atomics.sub(words, J_COUNT, 1);
    this.#mutex.post();
    this.#empty.post();
    return item;
  }
}

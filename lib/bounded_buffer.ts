/**
 * The textbook bounded buffer of the producer-consumer problem, in POSIX shared memory:
 * `buffer[BUFFER_SIZE]` with the indices `in` and `out`, one producer and one consumer,
 * holding at most `BUFFER_SIZE - 1` items ({@link BoundedBuffer}). The form with
 * semaphores is in lib/semaphore_bounded_buffer.ts.
 *
 * Items have a fixed size (`itemSize` bytes), like the textbook's `item` struct.
 *
 * @module
 */
import { closedError, CorruptedError, streamEndedError } from "../ffi/errno.ts";
import { FutexFlag, futexWaitable } from "./_futex.ts";
import {
  type BoundedBufferCreateOptions,
  type BoundedBufferOpenOptions,
  checkShape,
  validateItem,
  validateShape,
} from "./_buffer_shape.ts";
import { openLayout } from "./_layout.ts";
import { Attachment, withLife, writeIdentity } from "./_lifecycle.ts";
import { Lifetime } from "./_lifetime.ts";
import { step } from "./_steps.ts";
import { PENDING, untilDefined, waitFor, type WaitOptions } from "./_wait.ts";
import { Channel } from "./channel.ts";
import { SharedMemory } from "./shared_memory.ts";

export type { BoundedBufferCreateOptions, BoundedBufferOpenOptions };

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

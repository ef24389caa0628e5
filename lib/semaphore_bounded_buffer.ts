/**
 * The bounded buffer of the producer-consumer problem guarded by the counting semaphores
 * `empty` and `full` and a `mutex` ({@link SemaphoreBoundedBuffer}): all `BUFFER_SIZE`
 * slots, any number of producers and consumers. The form with `in` and `out` only is in
 * lib/bounded_buffer.ts.
 *
 * Items have a fixed size (`itemSize` bytes), like the textbook's `item` struct.
 *
 * @module
 */
import { closedError, CorruptedError, streamEndedError } from "../ffi/errno.ts";
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
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import { Channel } from "./channel.ts";
import { UnnamedSemaphore } from "./semaphore.ts";
import { SharedMemory } from "./shared_memory.ts";

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

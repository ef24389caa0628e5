/**
 * Indirect communication: mailboxes (ports) that any number of processes open by name,
 * send to and receive from, with zero, bounded or unbounded capacity.
 *
 * @module
 */
import {
  encodeSenderName,
  type MailboxCapacity,
  MailboxMessage,
  type MailboxStats,
  type MessageSender,
  validateStoreName,
} from "./_mailbox_message.ts";
import { MailboxStore } from "./_mailbox_store.ts";
import { randomPosixName, validateOptions } from "./_validate.ts";
import type { WaitOptions } from "./_wait.ts";

export { type MailboxCapacity, MailboxMessage, type MailboxStats, type MessageSender };

/** Options of {@link Mailbox.create}. */
export interface MailboxCreateOptions {
  /** Name such as `"/orders"`. Default: a fresh random name. */
  name?: string;
  /**
   * How many messages the mailbox holds before `send` waits:
   * - `0`: rendezvous; a send completes only when a receiver has taken its message;
   * - `n`: bounded; a send waits while `n` messages are queued;
   * - `"unbounded"`: a send never waits for room (see {@link Mailbox} for what bounds it).
   */
  capacity: MailboxCapacity;
  /** Largest message in bytes. Default: 4096. */
  maxMessageSize?: number;
  /**
   * Unbounded mailboxes only: bytes of each shared memory segment added when the
   * current one is full. Default: 64 KiB, or room for 4 of the largest messages.
   */
  segmentSize?: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
  /** Name written into the messages this handle sends. Default: none. */
  senderName?: string;
}

/** Options of {@link Mailbox.open}. */
export interface MailboxOpenOptions {
  /** Name of an existing mailbox. */
  name: string;
  /** Name written into the messages this handle sends. Default: none. */
  senderName?: string;
}

const WHAT = "mailbox";

/**
 * A mailbox: a named queue of messages in shared memory that any process may open,
 * send to and receive from. Several processes may send and several may receive; each
 * message is received exactly once, carries its sender's pid (and name, if the sender
 * set one), and messages from one handle arrive in the order its sends were called,
 * concurrent ones included.
 *
 * Capacity (fixed at creation):
 * - **0 (rendezvous):** `send` resolves only once a receiver has taken the message; a
 *   timeout or abort before that takes the message back. `trySend` succeeds only when a
 *   live receiver is blocked in `receive()` right now, and hands the message to it (up
 *   to 32 receivers at once offer themselves; more wait without offering).
 * - **n (bounded):** `send` waits while n messages are queued; `trySend` returns `false`.
 * - **"unbounded":** sends never wait for room: when the current segment of shared
 *   memory is full, the sender chains a new one (`segmentSize` bytes). What bounds it is
 *   memory: /dev/shm (a tmpfs, by default half of RAM). When that is full, the send
 *   throws an `ErrnoError` with code `ENOSPC` and that message is not sent; messages
 *   already sent stay. Drained segments are removed as receivers move past them.
 *
 * Every blocking form takes `timeout` and `signal`; `trySend` / `tryReceive` never wait
 * (for a lock another process holds they spin about a millisecond, then report "busy":
 * `false` / `undefined`).
 *
 * Crashes: a process killed at any moment loses only this: a receiver killed after
 * taking a message and before returning it loses that message. Counts it was updating
 * are repaired by the next process that takes its lock; a dead receiver's rendezvous
 * offer is ignored.
 * `close()` releases this handle; `delete()` removes the mailbox for every process:
 * handles elsewhere get `QueueRemovedError` at their next operation.
 *
 * @example Two senders, one receiver
 * ```ts
 * import { Mailbox } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using box = Mailbox.create({ capacity: 8 });
 * try {
 *   using alice = Mailbox.open({ name: box.name, senderName: "alice" });
 *   using bob = Mailbox.open({ name: box.name, senderName: "bob" });
 *   await alice.send("hello from alice");
 *   assert.equal(bob.trySend("hello from bob"), true);
 *   const first = await box.receive({ timeout: 1000 });
 *   assert.equal(first.sender.name, "alice");
 *   assert.equal(box.tryReceive()?.text(), "hello from bob");
 *   assert.equal(box.tryReceive(), undefined);
 * } finally {
 *   box.delete();
 * }
 * ```
 */
export class Mailbox implements Disposable {
  readonly #store: MailboxStore;

  private constructor(store: MailboxStore) {
    this.#store = store;
  }

  /**
   * Creates a mailbox exclusively (`AlreadyExistsError` if the name is taken).
   *
   * @example A rendezvous mailbox
   * ```ts
   * import { Mailbox } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using box = Mailbox.create({ capacity: 0 });
   * try {
   *   const received = box.receive({ timeout: 1000 });
   *   await box.send("taken", { timeout: 1000 }); // resolves once the receiver has it
   *   assert.equal((await received).text(), "taken");
   * } finally {
   *   box.delete();
   * }
   * ```
   */
  static create(options: MailboxCreateOptions): Mailbox {
    const checked = validateOptions<MailboxCreateOptions>(options, WHAT);
    const name = checked.name ?? randomPosixName();
    const sender = encodeSenderName(checked.senderName);
    const store = MailboxStore.create(
      {
        name,
        capacity: checked.capacity!,
        maxMessageSize: checked.maxMessageSize,
        segmentSize: checked.segmentSize,
        mode: checked.mode,
      },
      { what: WHAT },
      sender,
    );
    return new Mailbox(store);
  }

  /**
   * Opens an existing mailbox by name.
   *
   * @example
   * ```ts
   * import { Mailbox } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using box = Mailbox.create({ capacity: "unbounded" });
   * try {
   *   using other = Mailbox.open({ name: box.name });
   *   assert.equal(other.capacity, "unbounded");
   * } finally {
   *   box.delete();
   * }
   * ```
   */
  static open(options: MailboxOpenOptions): Mailbox {
    const checked = validateOptions<MailboxOpenOptions>(options, WHAT);
    const name = validateStoreName(checked.name, WHAT);
    const sender = encodeSenderName(checked.senderName);
    return new Mailbox(MailboxStore.open(name, { what: WHAT }, sender));
  }

  /** Deletes the mailbox `name` (see {@link Mailbox.delete}). */
  static delete(name: string): void {
    using box = Mailbox.open({ name });
    box.delete();
  }

  /** The mailbox's name. */
  get name(): string {
    return this.#store.name;
  }

  /** Whether `close()` was called on this handle. */
  get closed(): boolean {
    return this.#store.closed;
  }

  /** Capacity in messages: 0, n or `"unbounded"`. */
  get capacity(): MailboxCapacity {
    return this.#store.capacity;
  }

  /** Largest message in bytes. */
  get maxMessageSize(): number {
    return this.#store.maxMessageSize;
  }

  /** Messages sent and not yet received. */
  get queued(): number {
    return this.#store.queued;
  }

  /**
   * Counters shared by every handle: messages sent and received since creation and
   * queued now.
   */
  stats(): MailboxStats {
    return this.#store.stats();
  }

  /** Whether some process deleted the mailbox. */
  get deleted(): boolean {
    return this.#store.deleted;
  }

  /**
   * Sends `message` (bytes, or a string sent as UTF-8) if that needs no waiting;
   * returns `false` when the mailbox is full (at capacity 0: when no receiver is
   * blocked in `receive()`), while an earlier `send` of this handle still waits, so that
   * one sender's messages keep their order, and when another process has held the send
   * lock for about a millisecond (busy).
   */
  trySend(message: Uint8Array | string): boolean {
    return this.#store.trySend(this.#store.prepare(message));
  }

  /**
   * Sends `message`, waiting for room (at capacity 0: until a receiver has taken it).
   * Rejects with `RangeError` for a message over `maxMessageSize`, `TimedOutError`, the
   * abort reason, `ClosedError` or `QueueRemovedError`.
   */
  send(message: Uint8Array | string, options?: WaitOptions): Promise<void> {
    try {
      return this.#store.send(this.#store.prepare(message), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Receives the next message if one is there; `undefined` when the mailbox is empty, or
   * when another process has held the receive lock for about a millisecond (busy).
   */
  tryReceive(): MailboxMessage | undefined {
    return this.#store.tryReceive();
  }

  /** Receives the next message, waiting for one. */
  receive(options?: WaitOptions): Promise<MailboxMessage> {
    return this.#store.receive(options);
  }

  /**
   * Deletes the mailbox: removes its name and marks it deleted, so that every other
   * handle's next operation (and every waiting one) throws `QueueRemovedError`.
   * Queued messages are discarded.
   */
  delete(): void {
    this.#store.delete();
  }

  /** Releases this handle (the mailbox stays: see `delete`). Idempotent. */
  close(): void {
    this.#store.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

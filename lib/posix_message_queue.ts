/**
 * POSIX message queues (mq_overview(7)): named queues of messages with priorities;
 * receivers always get the oldest message of the highest priority. On Linux a queue
 * descriptor is a file descriptor, so waiting uses poll(2) off the main thread, in
 * slices, like pipes.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { check, closedError, errnoError, lastErrno, timedOutError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  checkOwnership,
  fileStatus,
  type Ownership,
  type OwnershipOptions,
  validateOwnership,
} from "./_owner.ts";
import { allocateMessage } from "./_pool.ts";
import { pollReady } from "./_poll.ts";
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
import { PENDING, untilDefined, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";
import { QueueMessage } from "./message_queue.ts";

const WHAT = "POSIX message queue";

// One receive buffer for every queue handle of this thread, as large as the largest
// message size of a queue opened so far: mq_receive runs synchronously here (the
// descriptor is non-blocking), so no two calls use it at once, and opening and closing
// handles allocates nothing.
let receiveBuffer = new Uint8Array(0);
const receivePriority = new Uint32Array(1);
const encoder = new TextEncoder();

/**
 * Options of {@link PosixMessageQueue.create} (and of `openOrCreate`, where an existing
 * queue must belong to this process's effective uid and give no group/other access
 * beyond `mode`'s, or `allowModes`).
 */
export interface PosixMessageQueueCreateOptions extends OwnershipOptions {
  /** Name such as `"/jobs"`. Default: a fresh random name. */
  name?: string;
  /** Most messages the queue holds. Default: 10. */
  maxMessages?: number;
  /** Largest message in bytes. Default: 8192. */
  messageSize?: number;
  /** Permission bits. Default: `0o600`. */
  mode?: number;
}

/**
 * Options of {@link PosixMessageQueue.open}: the queue must belong to this process's
 * effective uid and give no group/other access, unless the ownership options say
 * otherwise.
 */
export interface PosixMessageQueueOpenOptions extends OwnershipOptions {
  /** Name of an existing queue. */
  name: string;
}

/** Options of a send. */
export interface PosixSendOptions extends WaitOptions {
  /** Priority from 0 to 32767; higher is received first. Default: 0. */
  priority?: number;
}

/** A queue's attributes (mq_getattr(3)). */
export interface PosixMessageQueueAttributes {
  /** Most messages the queue holds. */
  maxMessages: number;
  /** Largest message in bytes. */
  messageSize: number;
  /** Messages in the queue now. */
  currentMessages: number;
}

/**
 * A POSIX message queue. Received messages are {@link QueueMessage}s whose `type` is
 * the message's priority.
 *
 * @example Priorities: sent low, high, mid; received high, mid, low
 * ```ts
 * import { PosixMessageQueue } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using queue = PosixMessageQueue.create();
 * try {
 *   for (const [text, priority] of [["low", 1], ["high", 9], ["mid", 5]] as const) {
 *     queue.trySend(text, { priority });
 *   }
 *   const order = [];
 *   for (let m = queue.tryReceive(); m; m = queue.tryReceive()) order.push(m.text());
 *   assert.deepEqual(order, ["high", "mid", "low"]);
 * } finally {
 *   queue.unlink();
 * }
 * ```
 */
export class PosixMessageQueue implements Disposable {
  readonly #name: string;
  readonly #fd: number;
  readonly #messageSize: number;
  readonly #lifetime: Lifetime;

  private constructor(name: string, fd: number) {
    this.#name = name;
    this.#fd = fd;
    this.#lifetime = new Lifetime(() => {
      libc().symbols.mq_close(fd);
    });
    this.#messageSize = this.#attributes().messageSize;
  }

  /**
   * Creates a queue exclusively. Asking for more than the system allows is a clear
   * error naming /proc/sys/fs/mqueue (msg_max, msgsize_max).
   */
  static create(options: PosixMessageQueueCreateOptions = {}): PosixMessageQueue {
    const checked = validateOptions<PosixMessageQueueCreateOptions>(options, WHAT);
    const name = checked.name === undefined
      ? randomPosixName()
      : validatePosixName(checked.name, WHAT, SHM_NAME_MAX);
    return PosixMessageQueue.#open(name, C.O_CREAT | C.O_EXCL, checked, undefined);
  }

  /**
   * Opens an existing queue (`NotFoundError` if there is none). A queue another user
   * owns, or whose mode gives group/other access, is refused with
   * `PermissionDeniedError` unless `allowOtherOwners` / `allowModes` accept it.
   */
  static open(options: PosixMessageQueueOpenOptions): PosixMessageQueue {
    const checked = validateOptions<PosixMessageQueueOpenOptions>(options, WHAT);
    const name = validatePosixName(checked.name, WHAT, SHM_NAME_MAX);
    return PosixMessageQueue.#open(name, 0, undefined, validateOwnership(checked));
  }

  /** Opens the queue, creating it with `options` if needed. */
  static openOrCreate(
    options: PosixMessageQueueCreateOptions & { name: string },
  ): PosixMessageQueue {
    const checked = validateOptions<PosixMessageQueueCreateOptions>(options, WHAT);
    const name = validatePosixName(checked.name, WHAT, SHM_NAME_MAX);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    return PosixMessageQueue.#open(name, C.O_CREAT, checked, validateOwnership(checked, mode));
  }

  /** Removes a queue's name; open descriptors keep working. */
  static unlink(name: string): void {
    validatePosixName(name, WHAT, SHM_NAME_MAX);
    check("mq_unlink", libc().symbols.mq_unlink(cString(name)), name);
  }

  static #open(
    name: string,
    flags: number,
    create: PosixMessageQueueCreateOptions | undefined,
    ownership: Ownership | undefined, // undefined: made by this call (O_EXCL)
  ): PosixMessageQueue {
    const attr = new DataView(new ArrayBuffer(C.SIZEOF_MQ_ATTR));
    let mode = 0;
    if (create) {
      const maxMessages = validateInteger(create.maxMessages ?? 10, "max messages", 1, 2 ** 31 - 1);
      const messageSize = validateInteger(
        create.messageSize ?? 8192,
        "message size",
        1,
        2 ** 31 - 1,
      );
      mode = validateMode(create.mode ?? DEFAULT_MODE, WHAT);
      attr.setBigInt64(C.MQ_ATTR_OFFSET_MAXMSG, BigInt(maxMessages), true);
      attr.setBigInt64(C.MQ_ATTR_OFFSET_MSGSIZE, BigInt(messageSize), true);
    }
    const fd = libc().symbols.mq_open(
      cString(name),
      C.O_RDWR | C.O_NONBLOCK | C.O_CLOEXEC | flags,
      mode,
      new Uint8Array(attr.buffer),
    );
    if (fd === -1) {
      const errno = lastErrno();
      if (create && errno === ERRNO.EINVAL) {
        throw errnoError(errno, "mq_open", {
          objectName: name,
          message: `Cannot create ${WHAT} "${name}" with ${create.maxMessages ?? 10} messages ` +
            `of ${create.messageSize ?? 8192} bytes: over the limits in /proc/sys/fs/mqueue ` +
            `(msg_max, msgsize_max) (EINVAL)`,
        });
      }
      throw errnoError(errno, "mq_open", { objectName: name });
    }
    if (ownership) {
      try {
        // On Linux a queue descriptor is a file descriptor: fstat reports owner and mode.
        const status = fileStatus(fd, name);
        checkOwnership([status.uid], status.mode, ownership, WHAT, name, "mq_open");
      } catch (error) {
        libc().symbols.mq_close(fd);
        throw error;
      }
    }
    return new PosixMessageQueue(name, fd);
  }

  /** The queue's name. */
  get name(): string {
    return this.#name;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** The queue's attributes now. */
  attributes(): PosixMessageQueueAttributes {
    this.#assertOpen("read the state of");
    return this.#attributes();
  }

  /** Sends `payload` with `priority` if there is room now; `false` when full. */
  trySend(payload: Uint8Array | string, options: { priority?: number } = {}): boolean {
    this.#assertOpen("send");
    const [bytes, priority] = this.#validateSend(payload, options);
    return this.#attemptSend(bytes, priority);
  }

  /** Sends, waiting while the queue is full. */
  send(payload: Uint8Array | string, options: PosixSendOptions = {}): Promise<void> {
    try {
      this.#assertOpen("send");
      const [bytes, priority] = this.#validateSend(payload, options);
      const wait = validateWaitOptions({ timeout: options.timeout, signal: options.signal });
      if (this.#attemptSend(bytes, priority)) return Promise.resolve();
      return this.#wait(
        "send",
        C.POLLOUT,
        () => this.#attemptSend(bytes, priority) || undefined,
        wait,
      )
        .then(() => {});
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Takes the oldest message of the highest priority, if there is one now. */
  tryReceive(): QueueMessage | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceive();
  }

  /** Takes the oldest message of the highest priority, waiting for one. */
  receive(options: WaitOptions = {}): Promise<QueueMessage> {
    try {
      this.#assertOpen("receive");
      const wait = validateWaitOptions(options);
      const now = this.#attemptReceive();
      if (now) return Promise.resolve(now);
      return this.#wait("receive", C.POLLIN, () => this.#attemptReceive(), wait);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Closes this descriptor (the queue stays: see `unlink`). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Removes the queue's name (see {@link PosixMessageQueue.unlink}). */
  unlink(): void {
    PosixMessageQueue.unlink(this.#name);
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#name);
  }

  #attributes(): PosixMessageQueueAttributes {
    const attr = new DataView(new ArrayBuffer(C.SIZEOF_MQ_ATTR));
    check(
      "mq_getattr",
      libc().symbols.mq_getattr(this.#fd, new Uint8Array(attr.buffer)),
      this.#name,
    );
    return {
      maxMessages: Number(attr.getBigInt64(C.MQ_ATTR_OFFSET_MAXMSG, true)),
      messageSize: Number(attr.getBigInt64(C.MQ_ATTR_OFFSET_MSGSIZE, true)),
      currentMessages: Number(attr.getBigInt64(C.MQ_ATTR_OFFSET_CURMSGS, true)),
    };
  }

  #validateSend(payload: unknown, options: { priority?: number }): [Uint8Array, number] {
    const bytes = payload instanceof Uint8Array
      ? payload
      : typeof payload === "string"
      ? encoder.encode(payload)
      : undefined;
    if (!bytes) throw new TypeError("Invalid payload: expected a Uint8Array or a string");
    if (bytes.length > this.#messageSize) {
      throw new RangeError(
        `Invalid payload of ${bytes.length} bytes: over the message size ${this.#messageSize} of ` +
          `${WHAT} "${this.#name}"`,
      );
    }
    const checked = validateOptions<{ priority?: number }>(options, "send");
    const priority = validateInteger(checked.priority ?? 0, "priority", 0, C.MQ_PRIO_MAX - 1);
    return [bytes, priority];
  }

  #attemptSend(bytes: Uint8Array, priority: number): boolean {
    const { symbols } = libc();
    if (symbols.mq_send(this.#fd, bytes, BigInt(bytes.length), priority) === 0) return true;
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return false;
    throw errnoError(errno, "mq_send", { objectName: this.#name });
  }

  #attemptReceive(): QueueMessage | undefined {
    // mq_receive refuses a buffer smaller than the queue's message size (EMSGSIZE).
    if (receiveBuffer.length < this.#messageSize) {
      receiveBuffer = new Uint8Array(this.#messageSize);
    }
    const n = libc().symbols.mq_receive(
      this.#fd,
      receiveBuffer,
      BigInt(receiveBuffer.length),
      receivePriority,
    );
    if (n >= 0) {
      const data = allocateMessage(n);
      data.set(receiveBuffer.subarray(0, n));
      return new QueueMessage(receivePriority[0], data);
    }
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return undefined;
    throw errnoError(errno, "mq_receive", { objectName: this.#name });
  }

  #wait<T>(
    operation: string,
    events: number,
    attempt: () => T | undefined,
    options: WaitOptions,
  ): Promise<T> {
    return waitFor({
      lifetime: this.#lifetime,
      attempt: untilDefined(attempt),
      park: async (ms) => {
        await pollReady(this.#fd, events, ms);
        return PENDING;
      },
      closedError: () => closedError(operation, WHAT, this.#name),
      timedOutError: (timeout) => timedOutError(operation, WHAT, this.#name, timeout),
      spin: 0,
    }, options);
  }
}

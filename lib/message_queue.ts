/**
 * System V message queues (msgget(2), msgsnd(2), msgrcv(2), msgctl(2)): a list of typed
 * messages kept by the kernel; any process with the key (or id) and the permission can
 * send to it and receive from it, choosing messages by type.
 *
 * System V queues cannot be waited on with a timeout, so waiting retries the
 * non-waiting call (IPC_NOWAIT): first spinning briefly, then at growing intervals,
 * sleeping off the main thread from 50 µs up to 8 ms. A queue removed while a process waits on it is reported as
 * `QueueRemovedError`.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { check, closedError, errnoError, lastErrno, timedOutError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  checkOwnership,
  OWN_ONLY,
  type Ownership,
  type OwnershipOptions,
  validateOwnership,
} from "./_owner.ts";
import { allocateMessage } from "./_pool.ts";
import {
  cString,
  DEFAULT_MODE,
  describe,
  jsonText,
  validateInteger,
  validateMode,
  validateOptions,
} from "./_validate.ts";
import { PENDING, untilDefined, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

const WHAT = "message queue";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How a queue is named: a numeric key, a path and project id (ftok(3)), or neither. */
export interface MessageQueueKeyOptions {
  /** A key chosen by the application. */
  key?: number;
  /** An existing file: with `projectId`, it makes the key (ftok(3)). */
  path?: string;
  /** With `path`: 1 to 255. Default: 1. */
  projectId?: number;
}

/**
 * Options of {@link MessageQueue.open}: the key, and what is accepted of the queue's
 * owner and mode (default: this process's effective uid as owner and creator, no group
 * or other access).
 */
export interface MessageQueueOpenOptions extends MessageQueueKeyOptions, OwnershipOptions {}

/**
 * Options of {@link MessageQueue.create} and {@link MessageQueue.openOrCreate}. An
 * existing queue that `openOrCreate` opens must belong to this process's effective uid
 * and give no group/other access beyond `mode`'s (or `allowModes`).
 */
export interface MessageQueueCreateOptions extends MessageQueueKeyOptions, OwnershipOptions {
  /** Permission bits. Default: `0o600`. */
  mode?: number;
}

/** Which message {@link MessageQueue.receive} takes. */
export interface ReceiveOptions {
  /**
   * 0 (default): the first message. Above 0: the first message of this type (or, with
   * `except`, of any other type). Below 0: the first message of the lowest type not
   * above `-type`.
   */
  type?: number;
  /** Take the first message whose type is NOT `type` (MSG_EXCEPT; `type` above 0). */
  except?: boolean;
  /** Largest payload to accept. Default: the system's msgmax. */
  maxSize?: number;
  /** Cut a longer payload to `maxSize` (MSG_NOERROR) instead of failing with E2BIG. */
  truncate?: boolean;
}

/**
 * A message taken from a queue. Payloads up to 1 KiB share a 64 KiB chunk (as Node.js
 * does for small Buffers): mind `data.byteOffset` when using `data.buffer`.
 */
export class QueueMessage {
  /** The message type (System V) or priority (POSIX). */
  readonly type: number;
  /** The payload. */
  readonly data: Uint8Array;

  /** Wraps a received message. */
  constructor(type: number, data: Uint8Array) {
    this.type = type;
    this.data = data;
  }

  /** The payload as UTF-8 text. */
  text(): string {
    return decoder.decode(this.data);
  }

  /** The payload parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

/** What msgctl(IPC_STAT) reports about a queue. */
export interface MessageQueueStats {
  /** Messages in the queue. */
  messages: number;
  /** Payload bytes in the queue. */
  bytes: number;
  /** Most payload bytes the queue holds (msg_qbytes). */
  capacity: number;
  /** Permission bits. */
  mode: number;
  /** Pid of the last sender (0: none yet). */
  lastSendPid: number;
  /** Pid of the last receiver (0: none yet). */
  lastReceivePid: number;
  /** Time of the last send, or null. */
  lastSendTime: Date | null;
  /** Time of the last receive, or null. */
  lastReceiveTime: Date | null;
}

// One send and one receive buffer for every queue handle of this thread: msgsnd and
// msgrcv run synchronously here (IPC_NOWAIT), so no two calls use a buffer at once, and
// opening and closing handles allocates nothing (a buffer per handle of 8 + msgmax
// bytes, freed only by a later GC, made RSS grow with open/close cycles).
let sendBuffer = new Uint8Array(0);
let sendView = new DataView(sendBuffer.buffer);
let receiveBuffer = new Uint8Array(0);
let receiveView = new DataView(receiveBuffer.buffer);

let systemLimits: { msgmax: number; msgmnb: number } | undefined;

/** The system's limits: largest message (msgmax) and default queue capacity (msgmnb). */
function limits(): { msgmax: number; msgmnb: number } {
  if (!systemLimits) {
    const info = new DataView(new ArrayBuffer(C.SIZEOF_MSGINFO));
    check("msgctl", libc().symbols.msgctl(0, C.IPC_INFO, new Uint8Array(info.buffer)));
    systemLimits = {
      msgmax: info.getInt32(C.MSGINFO_OFFSET_MSGMAX, true),
      msgmnb: info.getInt32(C.MSGINFO_OFFSET_MSGMNB, true),
    };
  }
  return systemLimits;
}

function keyOf(options: MessageQueueKeyOptions, required: boolean): number {
  const { key, path, projectId } = options;
  if (key !== undefined && path !== undefined) {
    throw new TypeError("Invalid message queue key: give a key or a path, not both");
  }
  if (key !== undefined) {
    validateInteger(key, "message queue key", -(2 ** 31), 2 ** 31 - 1);
    if (key === C.IPC_PRIVATE) {
      throw new RangeError(
        "Invalid message queue key 0: it means IPC_PRIVATE (omit the key instead)",
      );
    }
    return key;
  }
  if (path !== undefined) return MessageQueue.keyFromPath(path, projectId ?? 1);
  if (projectId !== undefined) {
    throw new TypeError("Invalid message queue key: projectId needs a path");
  }
  if (required) throw new TypeError("Invalid message queue key: give a key or a path");
  return C.IPC_PRIVATE;
}

// The owner AND the creator must be us: the creator of a queue can still change or
// remove it after giving it to another uid (msgctl(2) IPC_SET, IPC_RMID).
function checkQueueOwnership(id: number, ownership: Ownership = OWN_ONLY): DataView {
  const stat = new Uint8Array(C.SIZEOF_MSQID_DS);
  check("msgctl", libc().symbols.msgctl(id, C.IPC_STAT, stat), `queue ${id}`);
  const view = new DataView(stat.buffer);
  checkOwnership(
    [view.getUint32(C.MSQID_OFFSET_UID, true), view.getUint32(C.MSQID_OFFSET_CUID, true)],
    view.getUint32(C.MSQID_OFFSET_MODE, true),
    ownership,
    WHAT,
    `queue ${id}`,
    "msgget",
  );
  return view;
}

function validateType(type: unknown, what: string, min: number): number {
  return validateInteger(type, what, min, Number.MAX_SAFE_INTEGER);
}

function payloadBytes(payload: unknown): Uint8Array {
  if (payload instanceof Uint8Array) return payload;
  if (typeof payload === "string") return encoder.encode(payload);
  throw new TypeError(
    `Invalid payload: expected a Uint8Array or a string, got ${describe(payload)}`,
  );
}

/**
 * A System V message queue.
 *
 * @example Replies addressed by type
 * ```ts
 * import { MessageQueue } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using queue = MessageQueue.create(); // IPC_PRIVATE: pass queue.id to others
 * try {
 *   queue.trySend(1, "request");
 *   queue.trySend(Deno.pid, "reply for me");
 *   assert.equal(queue.tryReceive({ type: Deno.pid })?.text(), "reply for me");
 *   assert.equal((await queue.receive({ timeout: 100 })).text(), "request");
 * } finally {
 *   queue.remove();
 * }
 * ```
 */
export class MessageQueue implements Disposable {
  readonly #id: number;
  readonly #key: number;
  readonly #lifetime: Lifetime;

  private constructor(id: number, key: number) {
    this.#id = id;
    this.#key = key;
    this.#lifetime = new Lifetime(() => {}); // System V queues have nothing to close
  }

  /**
   * Creates a queue exclusively (`AlreadyExistsError` if the key is taken). Without a key
   * or path the queue is private (IPC_PRIVATE): share its `id` with other processes.
   */
  static create(options: MessageQueueCreateOptions = {}): MessageQueue {
    const checked = validateOptions<MessageQueueCreateOptions>(options, WHAT);
    const key = keyOf(checked, false);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const id = check(
      "msgget",
      libc().symbols.msgget(key, C.IPC_CREAT | C.IPC_EXCL | mode),
      `key ${key}`,
    );
    return new MessageQueue(id, key);
  }

  /**
   * Opens an existing queue by key or path (`NotFoundError` if there is none). A queue
   * owned or created by another user, or whose mode gives group/other access, is refused
   * with `PermissionDeniedError` unless `allowOtherOwners` / `allowModes` accept it.
   */
  static open(options: MessageQueueOpenOptions): MessageQueue {
    const checked = validateOptions<MessageQueueOpenOptions>(options, WHAT);
    const key = keyOf(checked, true);
    const ownership = validateOwnership(checked);
    const id = check("msgget", libc().symbols.msgget(key, 0), `key ${key}`);
    checkQueueOwnership(id, ownership);
    return new MessageQueue(id, key);
  }

  /**
   * Opens the queue for a key or path, creating it if needed. An existing queue is
   * checked as by {@link MessageQueue.open}, allowing the group/other bits of `mode`.
   */
  static openOrCreate(options: MessageQueueCreateOptions): MessageQueue {
    const checked = validateOptions<MessageQueueCreateOptions>(options, WHAT);
    const key = keyOf(checked, true);
    const mode = validateMode(checked.mode ?? DEFAULT_MODE, WHAT);
    const ownership = validateOwnership(checked, mode);
    const id = check("msgget", libc().symbols.msgget(key, C.IPC_CREAT | mode), `key ${key}`);
    checkQueueOwnership(id, ownership);
    return new MessageQueue(id, key);
  }

  /**
   * Uses a queue by its id (e.g. a private queue's id passed to a child). The queue is
   * checked as by {@link MessageQueue.open}.
   */
  static fromId(id: number, options: OwnershipOptions = {}): MessageQueue {
    validateInteger(id, "message queue id", 0, 2 ** 31 - 1);
    const ownership = validateOwnership(validateOptions<OwnershipOptions>(options, WHAT));
    const stat = checkQueueOwnership(id, ownership);
    return new MessageQueue(id, stat.getInt32(0, true));
  }

  /** The key ftok(3) makes from an existing `path` and a `projectId` from 1 to 255. */
  static keyFromPath(path: string, projectId = 1): number {
    if (typeof path !== "string" || path.length === 0 || path.includes("\0")) {
      throw new TypeError(`Invalid path for a message queue key: ${describe(path)}`);
    }
    validateInteger(projectId, "project id", 1, 255);
    return check("ftok", libc().symbols.ftok(cString(path), projectId), path);
  }

  /** The system's largest message payload, in bytes (msgmax). */
  static get maxMessageSize(): number {
    return limits().msgmax;
  }

  /** The queue id (msqid). */
  get id(): number {
    return this.#id;
  }

  /** The key the queue was made with (0 for a private queue). */
  get key(): number {
    return this.#key;
  }

  /** Whether `close()` was called on this handle. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * Sends a message of `type` (a positive integer) if there is room now; returns false
   * when the queue is full. A payload over msgmax is a RangeError.
   */
  trySend(type: number, payload: Uint8Array | string): boolean {
    this.#assertOpen("send");
    return this.#attemptSend(validateType(type, "message type", 1), this.#validatePayload(payload));
  }

  /**
   * Sends a message, waiting while the queue is full. A payload larger than the queue's
   * whole capacity is a RangeError (it could never be sent).
   */
  send(type: number, payload: Uint8Array | string, options?: WaitOptions): Promise<void> {
    try {
      this.#assertOpen("send");
      const bytes = this.#validatePayload(payload);
      validateType(type, "message type", 1);
      if (this.#attemptSend(type, bytes)) return SENT;
      // Waiting for room that can never come would be a hang, not a wait.
      const capacity = Number(this.#stat().getBigUint64(C.MSQID_OFFSET_QBYTES, true));
      if (bytes.length > capacity) {
        throw new RangeError(
          `Invalid payload of ${bytes.length} bytes: it can never fit ${this.#name()}: ` +
            `its capacity (msg_qbytes) is ${capacity} bytes`,
        );
      }
      return this.#wait("send", () => this.#attemptSend(type, bytes) ? true : undefined, options)
        .then(() => {});
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends `value` as JSON. */
  sendJson(type: number, value: unknown, options?: WaitOptions): Promise<void> {
    try {
      validateType(type, "message type", 1);
      validateWaitOptions(options);
      // Past those checks, a RangeError of send() is about the JSON text's size.
      return this.send(type, jsonText(value, "value"), options).catch((error) => {
        if (error instanceof RangeError && error.constructor === RangeError) {
          throw new RangeError(`Invalid value: ${error.message}`, { cause: error });
        }
        throw error;
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Takes the message `options` select, if there is one now. */
  tryReceive(options: ReceiveOptions = {}): QueueMessage | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceive(this.#selection(options));
  }

  /** Takes the message `options` select, waiting for one. */
  receive(options: ReceiveOptions & WaitOptions = {}): Promise<QueueMessage> {
    try {
      this.#assertOpen("receive");
      const selection = this.#selection(options);
      const wait = validateWaitOptions({ timeout: options.timeout, signal: options.signal });
      const now = this.#attemptReceive(selection);
      if (now) return Promise.resolve(now);
      return this.#wait("receive", () => this.#attemptReceive(selection), wait);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The queue's state (msgctl IPC_STAT). */
  stats(): MessageQueueStats {
    this.#assertOpen("read the state of");
    const view = this.#stat();
    const time = (offset: number) => {
      const seconds = Number(view.getBigInt64(offset, true));
      return seconds === 0 ? null : new Date(seconds * 1000);
    };
    return {
      messages: Number(view.getBigUint64(C.MSQID_OFFSET_QNUM, true)),
      bytes: Number(view.getBigUint64(C.MSQID_OFFSET_CBYTES, true)),
      capacity: Number(view.getBigUint64(C.MSQID_OFFSET_QBYTES, true)),
      mode: view.getUint32(C.MSQID_OFFSET_MODE, true) & 0o777,
      lastSendPid: view.getInt32(C.MSQID_OFFSET_LSPID, true),
      lastReceivePid: view.getInt32(C.MSQID_OFFSET_LRPID, true),
      lastSendTime: time(C.MSQID_OFFSET_STIME),
      lastReceiveTime: time(C.MSQID_OFFSET_RTIME),
    };
  }

  /** Sets the most payload bytes the queue holds (msgctl IPC_SET of msg_qbytes). */
  setCapacity(bytes: number): void {
    this.#assertOpen("change");
    validateInteger(bytes, "queue capacity (bytes)", 1, 2 ** 31 - 1);
    const view = this.#stat();
    view.setBigUint64(C.MSQID_OFFSET_QBYTES, BigInt(bytes), true);
    check(
      "msgctl",
      libc().symbols.msgctl(this.#id, C.IPC_SET, new Uint8Array(view.buffer)),
      this.#name(),
    );
  }

  /** Removes the queue at once (IPC_RMID): waiting processes get `QueueRemovedError`. */
  remove(): void {
    this.#assertOpen("remove");
    check("msgctl", libc().symbols.msgctl(this.#id, C.IPC_RMID, new Uint8Array(0)), this.#name());
  }

  /** Releases this handle (the queue stays until removed). Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #name(): string {
    return `queue ${this.#id}`;
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#name());
  }

  #stat(): DataView {
    const stat = new Uint8Array(C.SIZEOF_MSQID_DS);
    this.#check("msgctl", libc().symbols.msgctl(this.#id, C.IPC_STAT, stat));
    return new DataView(stat.buffer);
  }

  #validatePayload(payload: unknown): Uint8Array {
    const bytes = payloadBytes(payload);
    const { msgmax } = limits();
    if (bytes.length > msgmax) {
      throw new RangeError(
        `Invalid payload of ${bytes.length} bytes: over the system's limit msgmax = ${msgmax} ` +
          `(/proc/sys/kernel/msgmax)`,
      );
    }
    return bytes;
  }

  #selection(options: ReceiveOptions): { type: bigint; flags: number; maxSize: number } {
    const checked = validateOptions<ReceiveOptions>(options, "receive");
    const type = validateType(checked.type ?? 0, "message type", Number.MIN_SAFE_INTEGER);
    const { msgmax } = limits();
    const maxSize = validateInteger(checked.maxSize ?? msgmax, "maxSize", 0, msgmax);
    let flags = C.IPC_NOWAIT;
    if (checked.except) {
      if (type <= 0) throw new RangeError("Invalid receive: except needs a type above 0");
      flags |= C.MSG_EXCEPT;
    }
    if (checked.truncate) flags |= C.MSG_NOERROR;
    return { type: BigInt(type), flags, maxSize };
  }

  #attemptSend(type: number, payload: Uint8Array): boolean {
    const size = 8 + payload.length;
    if (sendBuffer.length < size) {
      sendBuffer = new Uint8Array(8 + limits().msgmax);
      sendView = new DataView(sendBuffer.buffer);
    }
    const buffer = sendBuffer;
    sendView.setBigInt64(0, BigInt(type), true);
    buffer.set(payload, 8);
    const { symbols } = libc();
    if (symbols.msgsnd(this.#id, buffer, BigInt(payload.length), C.IPC_NOWAIT) === 0) return true;
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return false;
    throw this.#error("msgsnd", errno);
  }

  #attemptReceive(
    selection: { type: bigint; flags: number; maxSize: number },
  ): QueueMessage | undefined {
    if (receiveBuffer.length < 8 + selection.maxSize) {
      receiveBuffer = new Uint8Array(8 + limits().msgmax);
      receiveView = new DataView(receiveBuffer.buffer);
    }
    const buffer = receiveBuffer;
    const n = libc().symbols.msgrcv(
      this.#id,
      buffer,
      BigInt(selection.maxSize),
      selection.type,
      selection.flags,
    );
    if (n >= 0) {
      const type = Number(receiveView.getBigInt64(0, true));
      const data = allocateMessage(n);
      data.set(buffer.subarray(8, 8 + n));
      return new QueueMessage(type, data);
    }
    const errno = lastErrno();
    if (errno === ERRNO.ENOMSG || errno === ERRNO.EINTR) return undefined;
    if (errno === ERRNO.E2BIG) {
      throw errnoError(errno, "msgrcv", {
        objectName: this.#name(),
        message:
          `The next message of ${this.#name()} is longer than maxSize ${selection.maxSize}: ` +
          `raise maxSize, or pass truncate: true to cut it (E2BIG)`,
      });
    }
    throw this.#error("msgrcv", errno);
  }

  // A removed queue reports EIDRM to calls that were waiting, and EINVAL (its id is no
  // longer valid) to calls made after: both mean "removed" for a queue we had.
  #error(syscall: string, errno: number): Error {
    if (errno === ERRNO.EIDRM || errno === ERRNO.EINVAL) {
      return errnoError(ERRNO.EIDRM, syscall, {
        objectName: this.#name(),
        message: `Message ${this.#name()} was removed (${syscall}: ${
          errno === ERRNO.EIDRM ? "EIDRM" : "EINVAL"
        })`,
      });
    }
    return errnoError(errno, syscall, { objectName: this.#name() });
  }

  #check(syscall: "msgctl", result: number): number {
    if (result === -1) throw this.#error(syscall, lastErrno());
    return result;
  }

  // msgrcv(2) and msgsnd(2) cannot wait with a timeout: retry the IPC_NOWAIT call,
  // sleeping off the main thread between tries, 50 µs at first, doubling up to 8 ms.
  #wait<T>(operation: string, attempt: () => T | undefined, options?: WaitOptions): Promise<T> {
    let pause = FIRST_PAUSE_MS;
    return waitFor({
      lifetime: this.#lifetime,
      attempt: untilDefined(attempt),
      park: async (ms) => {
        const sleep = Math.min(ms, pause);
        pause = Math.min(pause * 2, LAST_PAUSE_MS);
        await libc().symbols.usleep_async(Math.ceil(sleep * 1000));
        return PENDING;
      },
      closedError: () => closedError(operation, WHAT, this.#name()),
      timedOutError: (timeout) => timedOutError(operation, WHAT, this.#name(), timeout),
      spin: 20,
    }, options);
  }
}

const SENT: Promise<void> = Promise.resolve();
const FIRST_PAUSE_MS = 0.05;
const LAST_PAUSE_MS = 8;

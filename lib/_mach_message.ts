// Messages of Mach ports: their types, the checks of outgoing messages and send
// options (all before any syscall), and tokens that hand rights to child processes.
import { C } from "../ffi/constants.ts";
import { check, closedError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import type { MachNotification } from "./_mach_errors.ts";
import { OutOfLineMemory, type ReceivedMemory } from "./_mach_memory.ts";
import { ReceiveRight } from "./_mach_receive.ts";
import { SendOnceRight, SendRight } from "./_mach_send.ts";
import { closeAll, MAX_INLINE_BODY, MAX_RIGHTS } from "./_mach_wire.ts";
import { describe, validateInteger, validateOptions } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";

const WHAT = "Mach port";

/** Who sent a message, as the kernel recorded it when the message was sent. */
export interface MachSender {
  /** Process id of the sender. */
  readonly pid: number;
  /** Its user id. */
  readonly uid: number;
  /** Its group id. */
  readonly gid: number;
}

/**
 * A right placed in a message, with Mach's disposition: `copySend` (the sender keeps
 * its reference), `moveSend` / `moveSendOnce` (the sender's handle is consumed),
 * `makeSend` / `makeSendOnce` (made from a receive right the sender holds),
 * `moveReceive` (the receive right itself moves; the port, its queue and its send
 * rights live on).
 */
export type RightTransfer =
  | { copySend: SendRight }
  | { moveSend: SendRight }
  | { makeSend: ReceiveRight }
  | { makeSendOnce: ReceiveRight }
  | { moveSendOnce: SendOnceRight }
  | { moveReceive: ReceiveRight };

/** A message to send: Mach's header fields `id` and reply port, a body and rights. */
export interface OutgoingMessage {
  /** The message id the application chooses (a 32-bit signed integer). */
  id: number;
  /** Inline data, at most {@link MAX_INLINE_BODY} bytes. Default: empty. */
  body?: Uint8Array;
  /**
   * The reply port (Mach's local port), usually `{ makeSendOnce: replyPort }`: the
   * receiver gets it as {@link MachMessage.reply}.
   */
  reply?: RightTransfer;
  /** Rights carried in the body (a complex message), at most {@link MAX_RIGHTS}. */
  rights?: RightTransfer[];
  /**
   * Out-of-line memory regions (counted with `rights` against {@link MAX_RIGHTS}). A
   * successful send takes them: their bytes leave this process.
   */
  memory?: OutOfLineMemory[];
}

/** Options of {@link SendRight.send}: the four choices for a full queue. */
export interface SendOptions extends WaitOptions {
  /**
   * How long to wait for room in a full queue: absent waits as long as it takes, `N`
   * waits at most N ms, `0` returns at once; then {@link QueueFullError}.
   */
  timeout?: number;
  /**
   * The cached send: when the queue is full, the message is queued anyway (beyond the
   * limit) and the send resolves `"will-notify"`; once the queue has room the message is
   * put in it and a msg-accepted notification is sent to `notify`. One such message per
   * sending process and port at a time: another throws {@link NotifyInProgressError}.
   */
  notify?: SendRight;
}

/** How a send completed: queued, or queued beyond the limit with a notification owed. */
export type SendResult = "sent" | "will-notify";

/** Options of {@link ReceiveRight.receive}. */
export interface MachReceiveOptions extends WaitOptions {
  /** The largest body accepted, in bytes. Default: {@link MAX_INLINE_BODY}. */
  maxSize?: number;
  /**
   * What happens to a message larger than `maxSize`: with `true` it stays queued
   * (MACH_RCV_LARGE) and the error tells its size; by default it is destroyed.
   */
  large?: boolean;
}

/** Options of {@link ReceiveRight.allocate}. */
export interface AllocateOptions {
  /** Queue limit, 1 to {@link MAX_QUEUE_LIMIT}. Default: 5, Mach's. */
  queueLimit?: number;
  /** A label for traces and errors (a port has no name anyone could use). */
  label?: string;
}

/** A received message. Dispose it (or close its rights) to drop rights not taken. */
export interface MachMessage extends Disposable {
  /** The id the sender chose, or a {@link MACH_NOTIFY} id. */
  readonly id: number;
  /** The inline body. */
  readonly body: Uint8Array;
  /** The reply right the sender attached (Mach's local port), if any. */
  readonly reply: SendRight | SendOnceRight | undefined;
  /** Rights carried in the body. */
  readonly rights: readonly (SendRight | SendOnceRight | ReceiveRight)[];
  /** Out-of-line regions, mapped into this process; the message's disposal unmaps them. */
  readonly memory: readonly ReceivedMemory[];
  /** The sender as the kernel saw it; undefined for notifications made in this process. */
  readonly sender: MachSender | undefined;
  /** What kind of notification this is, if it is one. */
  readonly notification: MachNotification | undefined;
  /** This port's sequence number of the message (from 0). */
  readonly sequence: number;
}

function validateTransfer(transfer: unknown, what: string): RightTransfer {
  if (transfer === null || typeof transfer !== "object") {
    throw new TypeError(`Invalid ${what}: expected a right transfer, got ${describe(transfer)}`);
  }
  const keys = Object.keys(transfer);
  if (keys.length !== 1) {
    throw new TypeError(
      `Invalid ${what}: expected exactly one of copySend, moveSend, makeSend, makeSendOnce, ` +
        `moveSendOnce, moveReceive`,
    );
  }
  const [key] = keys;
  const value = (transfer as Record<string, unknown>)[key];
  const expected = key === "makeSend" || key === "makeSendOnce" || key === "moveReceive"
    ? ReceiveRight
    : key === "moveSendOnce"
    ? SendOnceRight
    : key === "copySend" || key === "moveSend"
    ? SendRight
    : undefined;
  if (expected === undefined) throw new TypeError(`Invalid ${what}: unknown disposition ${key}`);
  if (!(value instanceof expected)) {
    throw new TypeError(`Invalid ${what}: ${key} needs a ${expected.name}`);
  }
  if ((value as { closed: boolean }).closed) {
    throw closedError(`send ${key} of`, `${WHAT} right`, (value as { label: string }).label);
  }
  return transfer as RightTransfer;
}

export function validateMessage(message: unknown): OutgoingMessage {
  const checked = validateOptions<OutgoingMessage>(message, "message");
  if (message === undefined) throw new TypeError(`Invalid message: expected an object`);
  validateInteger(checked.id, "message id", -(2 ** 31), 2 ** 31 - 1);
  if (checked.body !== undefined) {
    if (!(checked.body instanceof Uint8Array)) {
      throw new TypeError(
        `Invalid message body: expected a Uint8Array, got ${describe(checked.body)}`,
      );
    }
    if (checked.body.length > MAX_INLINE_BODY) {
      throw new RangeError(
        `Invalid message body of ${checked.body.length} bytes: the inline limit is ` +
          `${MAX_INLINE_BODY} (send larger data out of line)`,
      );
    }
  }
  if (checked.reply !== undefined) {
    const reply = validateTransfer(checked.reply, "reply right");
    if ("makeSend" in reply || "copySend" in reply || "moveSend" in reply) {
      // Mach allows any send right as the reply port; deno-ipc does too.
    }
  }
  if (checked.rights !== undefined) {
    if (!Array.isArray(checked.rights)) {
      throw new TypeError(`Invalid message rights: expected an array`);
    }
    if (checked.rights.length > MAX_RIGHTS) {
      throw new RangeError(
        `Invalid message rights: ${checked.rights.length}, at most ${MAX_RIGHTS} per message`,
      );
    }
    checked.rights.forEach((transfer, i) => validateTransfer(transfer, `right ${i}`));
  }
  if (checked.memory !== undefined) {
    if (!Array.isArray(checked.memory)) {
      throw new TypeError(`Invalid message memory: expected an array of OutOfLineMemory`);
    }
    checked.memory.forEach((region, i) => {
      if (!(region instanceof OutOfLineMemory)) {
        throw new TypeError(`Invalid memory region ${i}: expected an OutOfLineMemory`);
      }
      if (region.closed) throw closedError("send", "out-of-line memory region", `${i}`);
    });
    if (new Set(checked.memory).size !== checked.memory.length) {
      throw new TypeError(`Invalid message memory: the same region appears twice`);
    }
  }
  const total = (checked.rights?.length ?? 0) + (checked.memory?.length ?? 0);
  if (total > MAX_RIGHTS) {
    throw new RangeError(
      `Invalid message: ${total} rights and memory regions, at most ${MAX_RIGHTS} per message`,
    );
  }
  const moved = new Set<unknown>();
  for (const transfer of [checked.reply, ...(checked.rights ?? [])]) {
    if (transfer === undefined) continue;
    const value = Object.values(transfer)[0];
    const key = Object.keys(transfer)[0];
    if (key.startsWith("move")) {
      if (moved.has(value)) {
        throw new TypeError(`Invalid message: the same right is moved twice`);
      }
      moved.add(value);
    }
  }
  // A send-once right made from a port whose receive right leaves in the same message
  // would owe its notification to the process the port left.
  for (const transfer of [checked.reply, ...(checked.rights ?? [])]) {
    if (transfer !== undefined && "makeSendOnce" in transfer && moved.has(transfer.makeSendOnce)) {
      throw new TypeError(
        `Invalid message: it moves the receive right of Mach port ` +
          `"${transfer.makeSendOnce.label}" and makes a send-once right from it`,
      );
    }
  }
  return checked as OutgoingMessage;
}

export function validateSendOptions(options: unknown): { notify?: SendRight } {
  const checked = validateOptions<SendOptions>(options, "send");
  validateWaitOptions({ timeout: checked.timeout, signal: checked.signal });
  if (checked.notify !== undefined) {
    if (!(checked.notify instanceof SendRight)) {
      throw new TypeError(`Invalid notify: expected a SendRight, got ${describe(checked.notify)}`);
    }
    if (checked.notify.closed) {
      throw closedError("use as notify port", `${WHAT} send right`, checked.notify.label);
    }
  }
  return { notify: checked.notify };
}

/** A token for a child process, and the duplicates it names (dispose after the spawn). */
export interface InheritedToken extends Disposable {
  /** Pass this string to the child. */
  readonly token: string;
}

export function inheritableToken(
  kind: string,
  fds: readonly number[],
  label: string,
): InheritedToken {
  const { symbols } = libc();
  const copies: number[] = [];
  try {
    // F_DUPFD without CLOEXEC: these duplicates survive exec into the child.
    for (const fd of fds) copies.push(check("fcntl", symbols.fcntl(fd, C.F_DUPFD, 3), label));
  } catch (error) {
    closeAll(copies);
    throw error;
  }
  let closed = false;
  return {
    token: `${kind}:${copies.join(",")}:${encodeURIComponent(label)}`,
    [Symbol.dispose]() {
      if (closed) return;
      closed = true;
      closeAll(copies);
    },
  };
}

export function parseToken(
  token: unknown,
  kind: string,
  count: number,
): { fds: number[]; label: string } {
  if (typeof token !== "string") {
    throw new TypeError(`Invalid inherited ${kind} right token: expected a string`);
  }
  const match = /^([a-z]+):([0-9,]+):(.*)$/.exec(token);
  if (!match || match[1] !== kind) {
    throw new TypeError(`Invalid inherited ${kind} right token "${token.slice(0, 40)}"`);
  }
  const fds = match[2].split(",").map(Number);
  if (fds.length !== count || fds.some((fd) => !Number.isInteger(fd) || fd < 3 || fd > 2 ** 20)) {
    throw new RangeError(`Invalid inherited ${kind} right token "${token.slice(0, 40)}"`);
  }
  let label: string;
  try {
    label = decodeURIComponent(match[3]);
  } catch {
    throw new TypeError(`Invalid inherited ${kind} right token: its label is not URI-encoded`);
  }
  // Mark them close-on-exec now that they are ours.
  for (const fd of fds) check("fcntl", libc().symbols.fcntl(fd, C.F_SETFD, C.FD_CLOEXEC), kind);
  return { fds, label };
}

// Typed errors and notification ids of Mach ports (lib/mach_port.ts).
import { ERRNO } from "../ffi/constants.ts";
import { ErrnoError, numberArgument, stringArgument, TimedOutError } from "../ffi/errno.ts";

/**
 * The port died: its receive right was closed, or its holder exited or was killed. A
 * send right to it is now a dead name (Mach's MACH_SEND_INVALID_DEST on a dead name).
 */
export class DeadNameError extends ErrnoError {}

/**
 * The queue was full for as long as the send was willing to wait (Mach's
 * MACH_SEND_TIMED_OUT; `timeout: 0` returns it at once). The message, with its rights,
 * stays with the sender.
 */
export class QueueFullError extends TimedOutError {}

/**
 * A cached send was refused because this process already has a cached message on that
 * port whose msg-accepted notification has not come yet (Mach 3's
 * MACH_SEND_NOTIFY_IN_PROGRESS).
 */
export class NotifyInProgressError extends ErrnoError {}

/**
 * The next message is larger than the receiver's `maxSize` (Mach's MACH_RCV_TOO_LARGE).
 * With `large: true` it stays queued and `size` tells how big a buffer it needs;
 * otherwise it was destroyed.
 */
export class MessageTooLargeError extends ErrnoError {
  /** The body size of the message, in bytes. */
  readonly size: number;
  /** Whether the message is still queued (`large: true`). */
  readonly stillQueued: boolean;

  /** Creates the error for a message of `size` bytes on the port `objectName`. */
  constructor(objectName: string, size: number, maxSize: number, stillQueued: boolean) {
    stringArgument(objectName, "objectName");
    numberArgument(size, "size");
    numberArgument(maxSize, "maxSize");
    if (typeof stillQueued !== "boolean") {
      throw new TypeError(`Invalid stillQueued: expected a boolean, got ${typeof stillQueued}`);
    }
    super(ERRNO.EMSGSIZE, "receive", {
      objectName,
      message: `Mach message on port "${objectName}" too large: its body has ${size} bytes, ` +
        `maxSize is ${maxSize} (${
          stillQueued ? "it stays queued" : "it was destroyed; pass large: true to keep it"
        })`,
    });
    this.size = size;
    this.stillQueued = stillQueued;
  }
}

/** Message ids of notifications, as in Mach's <mach/notify.h>. */
export const MACH_NOTIFY = {
  /** Mach 3: a cached message was accepted into the queue (MACH_NOTIFY_MSG_ACCEPTED). */
  MSG_ACCEPTED: 0o102,
  /** The last send right of the port is gone (MACH_NOTIFY_NO_SENDERS). */
  NO_SENDERS: 0o106,
  /** A send-once right was destroyed without being used (MACH_NOTIFY_SEND_ONCE). */
  SEND_ONCE: 0o107,
  /** A watched send right's port died: it is a dead name now (MACH_NOTIFY_DEAD_NAME). */
  DEAD_NAME: 0o110,
} as const;

/** The kinds of notifications. */
export type MachNotification = "msg-accepted" | "no-senders" | "send-once" | "dead-name";

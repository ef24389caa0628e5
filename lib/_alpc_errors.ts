// The errors of ALPC ports, and the checks and encodings of what a caller hands a port
// (payloads, send options, the text of an error reply).
import { ERRNO } from "../ffi/constants.ts";
import { ClosedError, stringArgument } from "../ffi/errno.ts";
import type { AlpcSendOptions } from "./_alpc_channel.ts";

const encoder = new TextEncoder();

/**
 * Why a channel ended: this side closed it ("closed"), the peer closed its port
 * ("port-closed"), or the peer died or its connection broke ("peer-died"; the server's
 * event for it is "client-died").
 */
export type CloseReason = "closed" | "port-closed" | "peer-died";

/**
 * The channel ended while a request was in flight (or before an operation): the peer
 * closed its port (`reason` "port-closed"), died ("peer-died"), or this side closed
 * it ("closed").
 */
export class PortClosedError extends ClosedError {
  /** What ended the channel. */
  readonly reason: CloseReason;

  /** Creates the error for the channel `name`. */
  constructor(reason: CloseReason, name: string, operation: string, cause?: unknown) {
    if (reason !== "closed" && reason !== "port-closed" && reason !== "peer-died") {
      throw new TypeError(`Invalid reason: expected "closed", "port-closed" or "peer-died"`);
    }
    stringArgument(name, "name");
    stringArgument(operation, "operation");
    const why = reason === "closed"
      ? "this side closed it"
      : reason === "port-closed"
      ? "the peer closed its port"
      : "the peer died or its connection broke";
    super(ERRNO.EBADF, operation, {
      objectName: name,
      message: `Cannot ${operation}: ALPC port "${name}" is closed (${why})`,
      cause,
    });
    this.reason = reason;
  }
}

/** The peer's handler for a request failed: its message, carried back as the reply. */
export class AlpcRemoteError extends Error {
  /** Creates the error with the peer's message. */
  constructor(message: string) {
    super(`The ALPC peer's handler failed: ${stringArgument(message, "message")}`);
    this.name = "AlpcRemoteError";
  }
}

/** Most bytes of an error reply's text (frames allow the inline limit plus this). */
export const MAX_ERROR_TEXT = 4096;

/**
 * Bytes of an error reply's text, at most {@link MAX_ERROR_TEXT} (cut at a character
 * boundary): the peer's frame limit leaves that much room beyond the inline limit.
 */
export function errorText(text: string): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length <= MAX_ERROR_TEXT) return bytes;
  let end = MAX_ERROR_TEXT;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Checks `sectionFull` of send options (whatever path the message will take). */
export function validateSectionFull(options: AlpcSendOptions | undefined): void {
  const sectionFull = options?.sectionFull;
  if (sectionFull !== undefined && sectionFull !== "wait" && sectionFull !== "fail") {
    throw new TypeError(`Invalid sectionFull: expected "wait" or "fail"`);
  }
}

/** Bytes of a payload argument. */
export function toPayload(data: unknown, what = "message"): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return encoder.encode(data);
  throw new TypeError(`Invalid ${what}: expected a Uint8Array or a string`);
}

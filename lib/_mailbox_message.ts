// What mailboxes and direct links share above their storage (lib/_mailbox_store.ts): the
// received-message type, the record format written into the rings, and the checks of
// options, names and sender names made before any syscall.
import {
  DEFAULT_MODE,
  SHM_NAME_MAX,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";

/** How many messages a mailbox or link holds: 0 (rendezvous), n, or `"unbounded"`. */
export type MailboxCapacity = number | "unbounded";

/**
 * Who sent a message, as the sender itself wrote it into the record: self-reported,
 * verified by nobody. Any process that can open the mailbox can write any pid and name.
 */
export interface MessageSender {
  /** The sending process's id, as the sender wrote it (not checked by the kernel). */
  readonly pid: number;
  /** The name the sender gave itself (`senderName`, or its endpoint name), if any. */
  readonly name: string | undefined;
}

/** What {@link Mailbox.stats} reports. */
export interface MailboxStats {
  /**
   * Messages sent since creation (mod 2^32). A rendezvous send taken back does not
   * count, unless a lock was busy as it was taken back: then receivers skip it, and it
   * counts as sent and received.
   */
  readonly sent: number;
  /** Messages received since creation (mod 2^32). */
  readonly received: number;
  /** Messages sent and not yet received. */
  readonly queued: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * A received message: its bytes and who sent it.
 *
 * @example Reading a message's sender and text
 * ```ts
 * import { Mailbox } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using box = Mailbox.create({ capacity: 4, senderName: "me" });
 * try {
 *   await box.send("hi");
 *   const message = await box.receive();
 *   assert.equal(message.text(), "hi");
 *   assert.equal(message.sender.name, "me");
 *   assert.equal(message.sender.pid, Deno.pid);
 * } finally {
 *   box.delete();
 * }
 * ```
 */
export class MailboxMessage {
  /** The message's bytes. */
  readonly data: Uint8Array;
  /**
   * Who sent it, as the sender claims: the pid and name are written by the sending
   * process and nobody verifies them, so a process that can open the mailbox can
   * claim to be anyone. A label, not proof: for an identity the kernel vouches for,
   * use a Unix socket's `peerCredentials`.
   */
  readonly sender: MessageSender;
  /** The mailbox (or link) it came through. */
  readonly source: string;

  /** Wraps a received message (made by the library, not by users). */
  constructor(data: Uint8Array, sender: MessageSender, source: string) {
    this.data = data;
    this.sender = sender;
    this.source = source;
  }

  /** The bytes decoded as UTF-8. */
  text(): string {
    return decoder.decode(this.data);
  }

  /** The bytes parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }
}

// A record in a ring: [u32 pid][u32 sequence][u8 name length][3 unused][name][payload].
export const RECORD_HEADER = 12;
export const RECORD_SEQUENCE = 4;
export const RECORD_NAME_LENGTH = 8;
/** Longest sender name, in UTF-8 bytes. */
export const SENDER_NAME_MAX = 64;
export const RING_RECORD_OVERHEAD = 8; // MessageRing's own per-message header
const MAX_RING_BYTES = 2 ** 30;
const DEFAULT_MAX_MESSAGE = 4096;
const MIN_SEGMENT_BYTES = 64 * 1024;
/** Suffix room for segment names: ".", 8 hex digits of token, ".", up to 10 digits. */
const SEGMENT_SUFFIX_MAX = 20;

/** Rounds up to a multiple of 8. */
export function roundUp8(n: number): number {
  return (n + 7) & ~7;
}

/** What a store is called in messages, e.g. "mailbox" or "link". */
export interface StoreIdentity {
  what: string;
  /** Name used in error messages (a link's "P -> Q"); defaults to the object name. */
  label?: string;
}

/** Options of {@link MailboxStore.create}. */
export interface StoreCreateOptions {
  name: string;
  capacity: MailboxCapacity;
  maxMessageSize?: number;
  segmentSize?: number;
  mode?: number;
}

/** Checks create options before any syscall. */
export function validateStoreOptions(
  options: unknown,
  what: string,
): Required<Omit<StoreCreateOptions, "name">> {
  const checked = validateOptions<StoreCreateOptions>(options, what);
  const capacity = checked.capacity;
  if (capacity === undefined) {
    throw new TypeError(`Invalid ${what} options: capacity is required (0, n or "unbounded")`);
  }
  if (capacity !== "unbounded") {
    validateInteger(capacity, `${what} capacity`, 0, 2 ** 24);
  }
  const maxMessageSize = validateInteger(
    checked.maxMessageSize ?? DEFAULT_MAX_MESSAGE,
    `${what} maxMessageSize`,
    0,
    MAX_RING_BYTES / 2,
  );
  const entry = RING_RECORD_OVERHEAD + roundUp8(RECORD_HEADER + SENDER_NAME_MAX + maxMessageSize);
  const segmentSize = validateInteger(
    checked.segmentSize ?? Math.max(MIN_SEGMENT_BYTES, 4 * entry),
    `${what} segmentSize`,
    entry,
    MAX_RING_BYTES,
  );
  if (capacity !== "unbounded" && Math.max(capacity, 1) * entry > MAX_RING_BYTES) {
    throw new RangeError(
      `Invalid ${what} capacity ${capacity}: ${capacity} messages of up to ${maxMessageSize} ` +
        `bytes need more than ${MAX_RING_BYTES} bytes of shared memory; lower maxMessageSize ` +
        `or the capacity`,
    );
  }
  const mode = validateMode(checked.mode ?? DEFAULT_MODE, what);
  return { capacity, maxMessageSize, segmentSize, mode };
}

/** Checks a sender name: a string of at most {@link SENDER_NAME_MAX} UTF-8 bytes. */
export function encodeSenderName(name: unknown): Uint8Array {
  if (name === undefined) return new Uint8Array(0);
  if (typeof name !== "string") {
    throw new TypeError(`Invalid sender name: expected a string`);
  }
  const bytes = encoder.encode(name);
  if (bytes.length > SENDER_NAME_MAX) {
    throw new RangeError(
      `Invalid sender name "${name.slice(0, 20)}...": ${bytes.length} bytes, the limit is ` +
        `${SENDER_NAME_MAX}`,
    );
  }
  return bytes;
}

/** Checks a mailbox name, leaving room for segment suffixes. */
export function validateStoreName(name: unknown, what: string): string {
  return validatePosixName(name, what, SHM_NAME_MAX - SEGMENT_SUFFIX_MAX);
}

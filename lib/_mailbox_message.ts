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
import { currentPid } from "./_process.ts";

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
  /**
   * Payload bytes sent since creation. Each handle adds its tally to the shared count
   * every 64 messages, when it finds the mailbox full, and on close: other handles' sends
   * may be missing from it by fewer than 64 messages each.
   */
  readonly sentBytes: number;
  /** Payload bytes received since creation (flushed as `sentBytes`, and when empty). */
  readonly receivedBytes: number;
  /**
   * The highest number of messages queued that a sender saw: sampled at its flushes
   * (every 64 sends, when full, on close), so a brief peak between samples may be missed;
   * at least `queued`.
   */
  readonly highestDepth: number;
  /** Sends that could not complete at once: full (or its send lock busy), mod 2^32. */
  readonly sendsFoundFull: number;
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

/**
 * Writes this handle's records (sender pid and name, then the message; the sequence is
 * filled in when it is sent) and reads received ones back into messages. One per store
 * handle: the record buffer is reused by every send.
 */
export class RecordCodec {
  readonly #maxMessage: number;
  readonly #what: string;
  readonly #label: string;
  readonly #nameLength: number;
  #record: Uint8Array;
  #prepared: Uint8Array | undefined;
  #lastName: Uint8Array = new Uint8Array(0);
  #lastNameText: string | undefined;
  #lastSender: MessageSender = { pid: 0, name: undefined };

  /** `senderName`: checked UTF-8 bytes (see {@link encodeSenderName}). */
  constructor(senderName: Uint8Array, maxMessage: number, what: string, label: string) {
    this.#maxMessage = maxMessage;
    this.#what = what;
    this.#label = label;
    const record = new Uint8Array(RECORD_HEADER + senderName.length + 64);
    const pid = currentPid();
    record[0] = pid & 0xff;
    record[1] = (pid >>> 8) & 0xff;
    record[2] = (pid >>> 16) & 0xff;
    record[3] = pid >>> 24;
    record[RECORD_NAME_LENGTH] = senderName.length;
    record.set(senderName, RECORD_HEADER);
    this.#record = record;
    this.#nameLength = senderName.length;
  }

  /** Checks a message and builds its record (valid until the next call). */
  prepare(message: unknown): Uint8Array {
    let bytes: Uint8Array;
    if (typeof message === "string") bytes = encoder.encode(message);
    else if (message instanceof Uint8Array) bytes = message;
    else throw new TypeError(`Invalid message: expected a Uint8Array or a string`);
    if (bytes.length > this.#maxMessage) {
      throw new RangeError(
        `Message of ${bytes.length} bytes does not fit ${this.#what} "${this.#label}": ` +
          `the largest is ${this.#maxMessage} bytes (maxMessageSize)`,
      );
    }
    const headerLength = RECORD_HEADER + this.#nameLength;
    const length = headerLength + bytes.length;
    if (this.#record.length < length) {
      const grown = new Uint8Array(Math.max(length, this.#record.length * 2));
      grown.set(this.#record.subarray(0, headerLength));
      this.#record = grown;
    }
    const record = this.#record;
    if (bytes.length <= 64) {
      for (let i = 0; i < bytes.length; i++) record[headerLength + i] = bytes[i];
    } else {
      record.set(bytes, headerLength);
    }
    if (this.#prepared?.buffer !== record.buffer || this.#prepared.length !== length) {
      this.#prepared = record.subarray(0, length);
    }
    return this.#prepared;
  }

  /** The message in a received record (which it keeps: records are not reused). */
  unpack(record: Uint8Array): MailboxMessage {
    const pid = (record[0] | (record[1] << 8) | (record[2] << 16) | (record[3] << 24)) >>> 0;
    const nameLength = record[RECORD_NAME_LENGTH];
    let name: string | undefined;
    if (nameLength > 0) {
      const last = this.#lastName;
      let same = last.length === nameLength;
      for (let i = 0; same && i < nameLength; i++) same = last[i] === record[RECORD_HEADER + i];
      if (!same) {
        this.#lastName = record.slice(RECORD_HEADER, RECORD_HEADER + nameLength);
        this.#lastNameText = decoder.decode(this.#lastName);
      }
      name = this.#lastNameText;
    }
    let sender = this.#lastSender;
    if (sender.pid !== pid || sender.name !== name) {
      sender = this.#lastSender = Object.freeze({ pid, name });
    }
    return new MailboxMessage(record.subarray(RECORD_HEADER + nameLength), sender, this.#label);
  }
}

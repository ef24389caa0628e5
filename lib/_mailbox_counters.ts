// The statistics of a mailbox (lib/_mailbox_store.ts): payload bytes sent and received,
// the highest depth a sender saw, and the sends that could not complete at once. Read
// only by introspection (lib/_kinds.ts) and stats(). Each handle tallies bytes in its own
// fields and adds the tally under its side's lock every COUNTER_FLUSH messages, when it
// finds the store full or empty, and on close: the shared words lag by fewer than
// COUNTER_FLUSH messages per handle, and a message costs no shared write of its own.
// The words sit on the cache line their side writes anyway.
import { RECORD_HEADER, RECORD_NAME_LENGTH } from "./_mailbox_message.ts";

const COUNTER_FLUSH = 64;

/** Where the counters are in the control block (Int32 and Float64 indices). */
export interface CounterLayout {
  /** Sends that could not complete at once (full, or lock busy). Senders' line. */
  sendsFull: number;
  /** Highest SENT - TAKEN a sender sampled (at its flushes). Senders' line. */
  highestDepth: number;
  /** Float64 indices: payload bytes sent (senders' line) and received (receivers'). */
  sentBytes: number;
  receivedBytes: number;
  /** SENT and TAKEN, for the depth. */
  sent: number;
  taken: number;
}

/** One handle's tallies and the shared counters they are added to. */
export class MailboxCounters {
  readonly #words: Int32Array;
  readonly #stats: Float64Array;
  readonly #at: CounterLayout;
  #sent = 0; // messages and payload bytes this handle sent, not yet flushed
  #sentBytes = 0;
  #received = 0;
  #receivedBytes = 0;

  constructor(words: Int32Array, stats: Float64Array, layout: CounterLayout) {
    this.#words = words;
    this.#stats = stats;
    this.#at = layout;
  }

  /** Whether this handle has sent or received messages it has not flushed. */
  get unflushedSends(): boolean {
    return this.#sent !== 0;
  }

  get unflushedReceives(): boolean {
    return this.#received !== 0;
  }

  /** A send that could not complete at once: returns false (for trySend's result). */
  countFull(): false {
    Atomics.add(this.#words, this.#at.sendsFull, 1);
    return false;
  }

  /** Under the send lock: a record published. */
  sent(record: Uint8Array): void {
    this.#sentBytes += record.length - RECORD_HEADER - record[RECORD_NAME_LENGTH];
    if (++this.#sent === COUNTER_FLUSH) this.flushSent();
  }

  /** Under the receive lock: a record taken. */
  received(record: Uint8Array): void {
    this.#receivedBytes += record.length - RECORD_HEADER - record[RECORD_NAME_LENGTH];
    if (++this.#received === COUNTER_FLUSH) this.flushReceived();
  }

  /**
   * Under the send lock: adds this handle's tally to the shared counter, and samples the
   * depth (TAKEN, on the receivers' line, is read here only: once per flush).
   */
  flushSent(): void {
    const words = this.#words;
    const at = this.#at;
    const depth = (words[at.sent] - Atomics.load(words, at.taken)) | 0;
    if (depth > (words[at.highestDepth] | 0)) words[at.highestDepth] = depth;
    if (this.#sent === 0) return;
    this.#stats[at.sentBytes] += this.#sentBytes;
    this.#sent = this.#sentBytes = 0;
  }

  /** Under the receive lock. */
  flushReceived(): void {
    if (this.#received === 0) return;
    this.#stats[this.#at.receivedBytes] += this.#receivedBytes;
    this.#received = this.#receivedBytes = 0;
  }

  /** The counters as stats() reports them: shared words plus this handle's tallies. */
  read(queued: number): {
    sentBytes: number;
    receivedBytes: number;
    highestDepth: number;
    sendsFoundFull: number;
  } {
    const words = this.#words;
    const at = this.#at;
    return {
      sentBytes: this.#stats[at.sentBytes] + this.#sentBytes,
      receivedBytes: this.#stats[at.receivedBytes] + this.#receivedBytes,
      highestDepth: Math.max(Atomics.load(words, at.highestDepth) >>> 0, queued),
      sendsFoundFull: Atomics.load(words, at.sendsFull) >>> 0,
    };
  }
}

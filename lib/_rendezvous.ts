// The zero-capacity part of a mailbox's control block (lib/_mailbox_store.ts): receivers'
// offers, and the fate of the one rendezvous message that can be queued at a time.
//
// Offers: a receiver blocked in receive() puts its 64-bit process token in a free slot, so
// that a trySend can hand a message to it. A trySend claims an offer by clearing its slot;
// the receiver withdraws by clearing it itself, and learns from a failed compare-and-swap
// that it was claimed. An offer whose process died is ignored and cleared, so a receiver
// killed while waiting never makes a trySend succeed.
//
// Fate: the sender publishes message `sequence` as pending; a receiver that takes it marks
// it taken, a sender giving up marks it cancelled. Both are one compare-and-swap on the
// same word, so exactly one wins and taking back needs no lock; receivers drop a cancelled
// message when they reach it.
import { currentProcessToken, tokenAlive } from "./_process.ts";

/** Number of offer slots: receivers beyond this many wait without offering. */
export const OFFER_SLOTS = 32;

const PENDING = 0n;
const TAKEN = 1n;
const CANCELLED = 2n;

function fate(sequence: number, state: bigint): bigint {
  return (BigInt(sequence >>> 0) << 2n) | state;
}

/** Offers and message fate over 64-bit words of shared memory. */
export class Rendezvous {
  readonly #words: BigInt64Array;
  readonly #fate: number;
  readonly #slots: number;

  /** The fate is `words[fateIndex]`; offers are the OFFER_SLOTS words from `slotsIndex`. */
  constructor(words: BigInt64Array, fateIndex: number, slotsIndex: number) {
    this.#words = words;
    this.#fate = fateIndex;
    this.#slots = slotsIndex;
  }

  /** Sender, under the send lock, before publishing message `sequence`. */
  publish(sequence: number): void {
    Atomics.store(this.#words, this.#fate, fate(sequence, PENDING));
  }

  /** Receiver that took message `sequence`: marks it taken; false when it was cancelled. */
  markTaken(sequence: number): boolean {
    const seen = Atomics.compareExchange(
      this.#words,
      this.#fate,
      fate(sequence, PENDING),
      fate(sequence, TAKEN),
    );
    return seen !== fate(sequence, CANCELLED);
  }

  /** Sender giving up on message `sequence`: true when it is cancelled, false when taken. */
  cancel(sequence: number): boolean {
    const seen = Atomics.compareExchange(
      this.#words,
      this.#fate,
      fate(sequence, PENDING),
      fate(sequence, CANCELLED),
    );
    return seen === fate(sequence, PENDING) || seen === fate(sequence, CANCELLED);
  }

  /**
   * What became of message `sequence`. The fate names it until the next rendezvous
   * message is published, which needs room: a fate that moved on means it was taken.
   */
  state(sequence: number): "pending" | "taken" | "cancelled" {
    const seen = Atomics.load(this.#words, this.#fate);
    if (seen === fate(sequence, PENDING)) return "pending";
    return seen === fate(sequence, CANCELLED) ? "cancelled" : "taken";
  }

  /** Whether any slot holds an offer (live or not). */
  anyOffer(): boolean {
    for (let i = 0; i < OFFER_SLOTS; i++) {
      if (Atomics.load(this.#words, this.#slots + i) !== 0n) return true;
    }
    return false;
  }

  /** Offers this process in a free slot; the slot, or -1 when all are taken. */
  makeOffer(): number {
    const token = currentProcessToken();
    for (let i = 0; i < OFFER_SLOTS; i++) {
      if (Atomics.compareExchange(this.#words, this.#slots + i, 0n, token) === 0n) return i;
    }
    return -1;
  }

  /** Withdraws an offer made in `slot`; false when a trySend claimed it first. */
  withdrawOffer(slot: number): boolean {
    const token = currentProcessToken();
    return Atomics.compareExchange(this.#words, this.#slots + slot, token, 0n) === token;
  }

  /** Claims one live receiver's offer; offers of dead processes are cleared. */
  claimOffer(): boolean {
    const own = currentProcessToken();
    for (let i = 0; i < OFFER_SLOTS; i++) {
      const index = this.#slots + i;
      const token = Atomics.load(this.#words, index);
      if (token === 0n) continue;
      const alive = token === own || tokenAlive(token);
      if (Atomics.compareExchange(this.#words, index, token, 0n) === token && alive) return true;
    }
    return false;
  }
}

// Where a mailbox's messages live (lib/_mailbox_store.ts): a chain of message rings
// (lib/message_ring.ts) in shared memory, named <store>.<token>.<index>. A bounded
// mailbox has one segment sized for its capacity; an unbounded one chains a new segment
// whenever the current one is full, and receivers remove the segments they drain. The
// control block's READ and WRITE segment words say which segments are in use; they are
// written by other processes, so every loop over them is bounded by MAX_CHAIN.
import { ERRNO } from "../ffi/constants.ts";
import { AlreadyExistsError, CorruptedError, ErrnoError, NotFoundError } from "../ffi/errno.ts";
import { MessageRing } from "./message_ring.ts";

// An unbounded mailbox chains at most this many segments (at least 4 GiB of messages at
// the smallest segment size): every loop over the chain is bounded by it, whatever
// another process writes into the segment indices.
export const MAX_CHAIN = 65_536;

/** Where the chain's words are in the control block, and what it is called in errors. */
export interface ChainShape {
  /** The control block's words. */
  words: Int32Array;
  /** Index of the segment receivers read (written under the receive lock). */
  readSegment: number;
  /** Index of the segment senders write (written under the send lock). */
  writeSegment: number;
  /** The control block's name and random token: they name the segments. */
  storeName: string;
  token: number;
  /** Size and mode of new segments. */
  segmentBytes: number;
  mode: number;
  /** Whether new segments are chained when one is full. */
  unbounded: boolean;
  /** For error messages. */
  what: string;
  label: string;
  /** Throws when the store was deleted (checked after a new segment was chained). */
  throwIfDeleted: (operation: string) => void;
}

/** One handle's view of the chain: the segments it opened, by index. */
export class SegmentChain {
  readonly #shape: ChainShape;
  readonly #words: Int32Array;
  readonly #segments = new Map<number, MessageRing>();
  #lastIndex = NaN;
  #last: MessageRing | undefined;

  constructor(shape: ChainShape) {
    this.#shape = shape;
    this.#words = shape.words;
  }

  /** Closes every segment this handle opened. */
  close(): void {
    for (const ring of this.#segments.values()) ring.close();
    this.#segments.clear();
  }

  /** The segment at `index`, opened on first use. */
  segment(index: number): MessageRing {
    if (index === this.#lastIndex && !this.#last!.closed) return this.#last!;
    let ring = this.#segments.get(index);
    if (ring === undefined) {
      ring = MessageRing.open({ name: this.#name(index) });
      this.#segments.set(index, ring);
      this.#releaseDrained();
      // Released at once: the index is behind the read segment, which only an index
      // another process wrote over can be.
      if (ring.closed) {
        throw this.corrupt(Atomics.load(this.#words, this.#shape.readSegment), index);
      }
    }
    this.#lastIndex = index;
    this.#last = ring;
    return ring;
  }

  /** Under the receive lock: whether no record is left in any segment. */
  empty(): boolean {
    const words = this.#words;
    const last = Atomics.load(words, this.#shape.writeSegment);
    const first = words[this.#shape.readSegment];
    if (((last - first) | 0) < 0 || ((last - first) | 0) > MAX_CHAIN) {
      throw this.corrupt(first, last);
    }
    for (let k = first; ((k - last) | 0) <= 0; k = (k + 1) | 0) {
      try {
        if (this.segment(k).usedBytes !== 0) return false;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error; // deleted, or never chained
      }
    }
    return true;
  }

  /**
   * Under the send lock: puts a record in the current segment, chaining a new one when
   * an unbounded mailbox's segment is full. False when there is no room.
   */
  publish(record: Uint8Array): boolean {
    const words = this.#words;
    const shape = this.#shape;
    const current = words[shape.writeSegment]; // written only under the send lock
    if (this.segment(current).trySend(record)) return true;
    // Bounded rings are sized for `capacity` messages, so only an unbounded mailbox
    // gets here: chain a new segment. A full /dev/shm makes this throw ENOSPC, and the
    // message is not sent.
    if (!shape.unbounded) return false;
    const next = (current + 1) | 0;
    if (((next - Atomics.load(words, shape.readSegment)) | 0) > MAX_CHAIN) {
      throw new ErrnoError(ERRNO.ENOSPC, "send", {
        objectName: shape.label,
        message: `The ${shape.what} "${shape.label}" holds ${MAX_CHAIN} segments, its most: ` +
          `nothing more can be queued until receivers catch up`,
      });
    }
    const ring = this.#create(next);
    ring.trySend(record);
    this.#segments.set(next, ring);
    Atomics.store(words, shape.writeSegment, next);
    // delete() marks the store deleted, then reads the write segment: one of the two
    // sides sees the other's store, so the new segment's name is removed either way.
    try {
      shape.throwIfDeleted("send");
    } catch (error) {
      ignoreNotFound(() => MessageRing.unlink(this.#name(next)));
      throw error;
    }
    this.#releaseDrained(); // a handle that only sends would keep them all
    return true;
  }

  /**
   * Under the receive lock: the next record, moving on to the next segment when the
   * current one is drained and a sender has moved on (it never writes there again).
   */
  take(): Uint8Array | undefined {
    const words = this.#words;
    const shape = this.#shape;
    while (true) {
      const current = words[shape.readSegment]; // written only under the receive lock
      const ring = this.segment(current);
      const record = ring.tryReceive();
      if (record) return record;
      // Only an unbounded mailbox chains segments; the others never read the senders'
      // cache line here.
      if (!shape.unbounded || Atomics.load(words, shape.writeSegment) === current) {
        return undefined;
      }
      // The writer moved on after its last write here: one more look is definitive.
      const last = ring.tryReceive();
      if (last) return last;
      Atomics.store(words, shape.readSegment, (current + 1) | 0);
      this.#segments.delete(current);
      ring.close();
      ignoreNotFound(() => MessageRing.unlink(this.#name(current)));
    }
  }

  /** The error for segment indices another process wrote over. */
  corrupt(first: number, last: number): CorruptedError {
    return CorruptedError.of(
      this.#shape.what,
      this.#shape.label,
      "segment indices",
      `read ${first}, write ${last}: more than ${MAX_CHAIN} segments apart or reversed`,
    );
  }

  #name(index: number): string {
    return segmentName(this.#shape.storeName, this.#shape.token, index);
  }

  // Closes the segments that receivers have moved past (drained, unlinked).
  #releaseDrained(): void {
    const readSegment = Atomics.load(this.#words, this.#shape.readSegment);
    for (const [k, old] of this.#segments) {
      if (((k - readSegment) | 0) < 0) {
        old.close();
        this.#segments.delete(k);
      }
    }
  }

  #create(index: number): MessageRing {
    const name = this.#name(index);
    const options = ringOptions(name, this.#shape.segmentBytes, this.#shape.mode);
    try {
      return MessageRing.create(options);
    } catch (error) {
      // Left over by a process that died between creating and chaining it.
      if (!(error instanceof AlreadyExistsError)) throw error;
      MessageRing.unlink(name);
      return MessageRing.create(options);
    }
  }
}

/**
 * Removes the names of segments `first` to `last` of a store (at most MAX_CHAIN + 1 of
 * them); returns false when the indices are corrupt (then only the first ones are
 * removed).
 */
export function unlinkSegments(
  storeName: string,
  token: number,
  first: number,
  last: number,
): boolean {
  const span = (last - first) | 0;
  for (let n = 0; n <= Math.min(span, MAX_CHAIN); n++) {
    ignoreNotFound(() => MessageRing.unlink(segmentName(storeName, token, (first + n) | 0)));
  }
  return span >= 0 && span <= MAX_CHAIN;
}

// Single-producer, single-consumer rings: the mailbox's own locks let one sender and
// one receiver in at a time. (Different handles take turns; a ring handle trusts its
// cached positions only while no other handle has moved its side since.)
/** Options of a segment's ring. */
export function ringOptions(
  name: string,
  capacity: number,
  mode: number,
): { name: string; capacity: number; mode: number; producers: number } {
  return { name, capacity, mode, producers: 0 };
}

/**
 * The name of segment `index` of the store `name`. The store's random token keeps it
 * apart from any other object's name (a user's "/jobs.1" is never a segment of "/jobs").
 */
export function segmentName(name: string, token: number, index: number): string {
  return `${name}.${(token >>> 0).toString(16).padStart(8, "0")}.${index >>> 0}`;
}

/** Runs `action`, ignoring NotFoundError (a name someone else removed first). */
export function ignoreNotFound(action: () => void): void {
  try {
    action();
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
}

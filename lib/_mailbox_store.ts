// The storage behind mailboxes (lib/mailbox.ts) and direct links (lib/direct.ts): a
// control block in shared memory plus message rings (lib/message_ring.ts) holding the
// messages. The control block adds what message passing needs on top of a ring:
//
// - capacity in messages: zero (rendezvous), bounded n, or unbounded (a chain of ring
//   segments, a new one created whenever the current one is full);
// - the sender's identity on every message (pid and an optional name);
// - several senders and several receivers (one lock per side, held only while copying
//   one message, taken over from a holder that died);
// - deletion, which every other handle notices at its next operation.
//
// Counters: every record carries its sequence number. SENT is the sequence of the last
// record published, TAKEN that of the last one taken (mod 2^32); SENT - TAKEN is the
// number queued. Under the send lock SENT is exact and TAKEN can only lag, so a sender
// never sees more room than there is.
//
// Crashes (a process killed at any moment, lock holders included):
// - A sender writes its sequence to SEND_INTENT before the ring step and SENT after it.
//   Whoever next takes the send lock and finds them different repairs SENT: the record
//   was published when it was taken already, or when the chain is not empty (then it is
//   the last record; if it was not, SENT counts one message that never came, and the
//   next take, which sets TAKEN from the record, skips it).
// - A receiver sets TAKEN from the record it took, so a receiver killed between its
//   take and that store is corrected by the next take; and under the receive lock an
//   empty chain proves that every record counted in SENT (read before) was taken.
//   That receiver's message is lost with it: the only loss a crash can cause.
// - Zero capacity: offers hold live process tokens, and whether a rendezvous message was
//   taken or taken back is one compare-and-swap (lib/_rendezvous.ts).
import { ERRNO } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import {
  AlreadyExistsError,
  closedError,
  NotFoundError,
  QueueRemovedError,
  timedOutError,
} from "../ffi/errno.ts";
import { FutexFlag } from "./_futex.ts";
import { Attachment } from "./_lifecycle.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  CONTROL_BYTES,
  createControl,
  F_RECEIVED_BYTES,
  F_SENT_BYTES,
  I_CAPACITY,
  I_DELETED,
  I_FATE,
  I_HIGHEST_DEPTH,
  I_LIFE,
  I_MAX_MESSAGE,
  I_MODE,
  I_OFFER_SLOTS,
  I_READ_SEGMENT,
  I_RECEIVE_LOCK,
  I_RECEIVE_LOCK_WAITING,
  I_RECEIVE_WAITING,
  I_SEGMENT_BYTES,
  I_SEND_INTENT,
  I_SEND_LOCK,
  I_SEND_LOCK_WAITING,
  I_SEND_WAITING,
  I_SENDS_FULL,
  I_SENT,
  I_TAKEN,
  I_TAKEN_WAITING,
  I_TOKEN,
  I_WRITE_SEGMENT,
  openControl,
  UNBOUNDED,
} from "./_mailbox_control.ts";
import { MailboxCounters } from "./_mailbox_counters.ts";
import { PidLock } from "./_process.ts";
import { Rendezvous } from "./_rendezvous.ts";
import { step, stepping } from "./_steps.ts";
import {
  type MailboxCapacity,
  MailboxMessage,
  type MailboxStats,
  RECORD_SEQUENCE,
  RecordCodec,
  type StoreCreateOptions,
  type StoreIdentity,
} from "./_mailbox_message.ts";
import {
  PENDING,
  Turns,
  untilDefined,
  validateWaitOptions,
  type Waitable,
  waitFor,
  type WaitOptions,
} from "./_wait.ts";
import { ignoreNotFound, SegmentChain, unlinkSegments } from "./_segment_chain.ts";
import { SharedMemory } from "./shared_memory.ts";

// A power of two: see #attemptReceive.
const EMPTY_LOOKS_PER_REPAIR = 64;

// A lock is held only while one message is copied; a holder that stays longer is
// preempted or stopped. A try form spins this long for it, then reports "busy"; waiting
// forms sleep until the holder's release wakes them.
const LOCK_SPIN_MS = 1;
const QUICK_RETRIES = 16;

/**
 * Takes a lock: one attempt, or with `patient` a spin of at most {@link LOCK_SPIN_MS}
 * (yielding the CPU now and then, and taking the lock over from a dead holder).
 */
function acquire(lock: PidLock, patient: boolean): boolean {
  if (lock.tryAcquire()) return true;
  if (!patient) return false;
  const deadline = performance.now() + LOCK_SPIN_MS;
  for (let i = 1;; i++) {
    if (lock.tryAcquire()) return true;
    if ((i & 63) === 0 && !lock.recoverFromDeadHolder()) {
      if (performance.now() >= deadline) return false;
      libc().symbols.sched_yield();
    }
  }
}

/**
 * The shared state of one mailbox or one direction of a link, as seen by one handle.
 * Public classes wrap it; `onPublish` lets a direct endpoint learn of each send.
 */
export class MailboxStore {
  readonly #control: SharedMemory;
  readonly #words: Int32Array;
  readonly #rendezvous: Rendezvous;
  readonly #lifetime: Lifetime;
  readonly #what: string;
  readonly #label: string;
  readonly #capacity: number;
  readonly #maxMessage: number;
  readonly #sendLock: PidLock;
  readonly #receiveLock: PidLock;
  readonly #sendWaiting: FutexFlag;
  readonly #receiveWaiting: FutexFlag;
  readonly #takenWaiting: FutexFlag;
  readonly #sendLockWaiting: FutexFlag;
  readonly #receiveLockWaiting: FutexFlag;
  readonly #chain: SegmentChain;
  readonly #records: RecordCodec;
  #takenSeen = 0;
  #sentWhenSeen = 0;
  #emptyLooks = 0; // empty looks since this handle last took a record
  #takenRead = false;
  readonly #counters: MailboxCounters;
  readonly #sendTurns = new Turns();
  /** Called after every message this handle publishes. */
  onPublish: (() => void) | undefined;

  private constructor(control: SharedMemory, identity: StoreIdentity, senderName: Uint8Array) {
    this.#control = control;
    this.#what = identity.what;
    this.#label = identity.label ?? control.name;
    const words = control.view(Int32Array, 0, CONTROL_BYTES / 4);
    this.#words = words;
    this.#counters = new MailboxCounters(words, control.view(Float64Array, 0, CONTROL_BYTES / 8), {
      sendsFull: I_SENDS_FULL,
      highestDepth: I_HIGHEST_DEPTH,
      sentBytes: F_SENT_BYTES,
      receivedBytes: F_RECEIVED_BYTES,
      sent: I_SENT,
      taken: I_TAKEN,
    });
    this.#capacity = words[I_CAPACITY];
    this.#maxMessage = words[I_MAX_MESSAGE];
    const lockWords = control.view(BigInt64Array, 0, CONTROL_BYTES / 8);
    this.#rendezvous = new Rendezvous(lockWords, I_FATE / 2, I_OFFER_SLOTS / 2);
    this.#sendLock = new PidLock(lockWords, I_SEND_LOCK / 2);
    this.#receiveLock = new PidLock(lockWords, I_RECEIVE_LOCK / 2);
    const flag = (index: number) => new FutexFlag(words, index, control.unsafePointer(index * 4));
    this.#sendWaiting = flag(I_SEND_WAITING);
    this.#receiveWaiting = flag(I_RECEIVE_WAITING);
    this.#takenWaiting = flag(I_TAKEN_WAITING);
    this.#sendLockWaiting = flag(I_SEND_LOCK_WAITING);
    this.#receiveLockWaiting = flag(I_RECEIVE_LOCK_WAITING);
    this.#chain = new SegmentChain({
      words,
      readSegment: I_READ_SEGMENT,
      writeSegment: I_WRITE_SEGMENT,
      storeName: control.name,
      token: words[I_TOKEN],
      segmentBytes: words[I_SEGMENT_BYTES],
      mode: words[I_MODE],
      unbounded: this.#capacity === UNBOUNDED,
      what: this.#what,
      label: this.#label,
      throwIfDeleted: (operation) => this.#throwIfDeleted(operation),
    });
    // Throws NotFoundError when a cleaner is removing the store (the caller closes it).
    const attachment = Attachment.attach(control, words[I_LIFE], identity.what);
    this.#lifetime = new Lifetime(() => {
      this.#flushOnClose();
      attachment.detach();
      this.#chain.close();
      control.close();
    });
    this.#records = new RecordCodec(senderName, this.#maxMessage, this.#what, this.#label);
  }

  /** Creates the store exclusively (`AlreadyExistsError` when the name is taken). */
  static create(
    options: StoreCreateOptions,
    identity: StoreIdentity,
    senderName: Uint8Array,
  ): MailboxStore {
    const control = createControl(options, identity);
    return new MailboxStore(control, identity, senderName);
  }

  /** Opens an existing store by name. */
  static open(name: string, identity: StoreIdentity, senderName: Uint8Array): MailboxStore {
    const control = openControl(name, identity);
    try {
      return new MailboxStore(control, identity, senderName);
    } catch (error) {
      control.close();
      throw error;
    }
  }

  /**
   * Opens the store, or creates it when it does not exist. Stores appear whole (see
   * create), so the only race is with a deletion between the two attempts: retried.
   */
  static openOrCreate(
    options: StoreCreateOptions,
    identity: StoreIdentity,
    senderName: Uint8Array,
  ): MailboxStore {
    for (let attempt = 0;; attempt++) {
      try {
        return MailboxStore.create(options, identity, senderName);
      } catch (error) {
        if (!(error instanceof AlreadyExistsError)) throw error;
      }
      try {
        return MailboxStore.open(options.name, identity, senderName);
      } catch (error) {
        // Deleted between our create and open: try again, a few times.
        if (!(error instanceof NotFoundError) || attempt >= 3) throw error;
      }
    }
  }

  /** The control block's name. */
  get name(): string {
    return this.#control.name;
  }

  /** Whether this handle was closed. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** Capacity in messages: 0, n, or "unbounded". */
  get capacity(): MailboxCapacity {
    return this.#capacity === UNBOUNDED ? "unbounded" : this.#capacity;
  }

  /** Largest message, in bytes. */
  get maxMessageSize(): number {
    return this.#maxMessage;
  }

  /** Messages sent and not yet received. */
  get queued(): number {
    this.#assertOpen("read the state of");
    return this.#queued();
  }

  /**
   * Counters since creation (messages mod 2^32) and the number queued now. Bytes, the
   * highest depth and full sends are the shared counters, plus this handle's own tallies
   * (other handles' lag by fewer than 64 messages each until they flush).
   */
  stats(): MailboxStats {
    this.#assertOpen("read the state of");
    const words = this.#words;
    const sent = Atomics.load(words, I_SENT) >>> 0;
    const received = Atomics.load(words, I_TAKEN) >>> 0;
    const queued = this.#queued();
    return {
      sent,
      received,
      queued,
      ...this.#counters.read(queued),
    };
  }

  /** Whether the store was deleted (by any process). */
  get deleted(): boolean {
    this.#assertOpen("read the state of");
    return Atomics.load(this.#words, I_DELETED) !== 0;
  }

  /** Checks a message and builds its record; throws before touching shared state. */
  prepare(message: unknown, operation = "send"): Uint8Array {
    this.#assertOpen(operation);
    return this.#records.prepare(message);
  }

  /** Sends a prepared record if there is room now. */
  trySend(record: Uint8Array): boolean {
    this.#assertOpen("send");
    // A send of this handle is waiting: going first would break this sender's order.
    if (this.#sendTurns.busy) return this.#counters.countFull();
    if (this.#capacity !== 0) {
      return this.#attemptSend(record, true) !== undefined || this.#counters.countFull();
    }
    // Zero capacity: only a receiver blocked in receive() can take it now. Publish, then
    // claim that receiver; if it left meanwhile, take the message back.
    if (!this.#rendezvous.anyOffer()) return false;
    const sequence = this.#attemptSend(record, true);
    if (sequence === undefined) return false;
    if (this.#rendezvous.claimOffer()) return true;
    return !this.#retract(sequence);
  }

  /** Sends a prepared record, waiting for room (and, at capacity 0, for a receiver). */
  async send(record: Uint8Array, options?: WaitOptions): Promise<void> {
    this.#assertOpen("send");
    validateWaitOptions(options);
    const started = performance.now();
    const rendezvous = this.#capacity === 0;
    // Pinned from the start at capacity 0: taking the message back after a timeout or
    // close() must find the memory mapped.
    if (rendezvous) this.#lifetime.pin();
    try {
      let sequence: number | undefined;
      for (let i = 0; i < QUICK_RETRIES && sequence === undefined && !this.#sendTurns.busy; i++) {
        sequence = this.#attemptSend(record, false);
      }
      if (sequence === undefined) {
        this.#counters.countFull();
        sequence = await this.#sendInTurn(record.slice(), options);
      }
      if (rendezvous) await this.#awaitTaken(sequence, started, options);
    } finally {
      if (rendezvous) this.#lifetime.unpin();
    }
  }

  // Waits for room behind this handle's earlier waiting sends (messages of one sender
  // keep their order). `own` is a copy: the handle's record buffer is reused by the next
  // send while this one waits.
  async #sendInTurn(own: Uint8Array, options?: WaitOptions): Promise<number> {
    const started = performance.now();
    const endTurn = await this.#sendTurns.take(
      options ?? {},
      (ms) => timedOutError("send", this.#what, this.#label, ms),
    );
    try {
      const timeout = options?.timeout;
      const waitable = this.#waitable(
        "send",
        untilDefined(() => this.#attemptSend(own, false)),
        this.#sendWaiting,
        () => this.#isDeleted() || this.#hasRoom(),
        () => this.#recover(true),
        this.#sendLock,
        this.#sendLockWaiting,
      );
      if (timeout !== undefined) {
        waitable.timedOutError = () => timedOutError("send", this.#what, this.#label, timeout);
      }
      return await waitFor(waitable, {
        signal: options?.signal,
        timeout: timeout === undefined
          ? undefined
          : Math.max(0, timeout - (performance.now() - started)),
      });
    } finally {
      endTurn();
    }
  }

  // Rendezvous: the send completes when a receiver has taken message `mine`; giving up
  // (timeout, abort, close, deletion) takes it back unless it was taken meanwhile.
  async #awaitTaken(mine: number, started: number, options?: WaitOptions): Promise<void> {
    const timeout = options?.timeout;
    try {
      const waitable = this.#waitable(
        "send",
        () => {
          if (this.#rendezvousTaken(mine)) return true;
          this.#throwIfDeleted("send");
          return PENDING;
        },
        this.#takenWaiting,
        () => this.#isDeleted() || this.#rendezvousTaken(mine),
        () => this.#recover(false),
      );
      if (timeout !== undefined) {
        waitable.timedOutError = () => timedOutError("send", this.#what, this.#label, timeout);
      }
      await waitFor(waitable, {
        signal: options?.signal,
        timeout: timeout === undefined
          ? undefined
          : Math.max(0, timeout - (performance.now() - started)),
      });
    } catch (error) {
      if (this.#retract(mine)) throw error;
      // Taken while we were giving up: the send did complete.
    }
  }

  /**
   * Receives the next message if one is there. With `patient` (the try form) it waits up
   * to about a millisecond for a lock another process holds; without, it never waits.
   */
  tryReceive(patient = true): MailboxMessage | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceive(undefined, patient);
  }

  /** Receives the next message, waiting for one. */
  async receive(options?: WaitOptions): Promise<MailboxMessage> {
    this.#assertOpen("receive");
    validateWaitOptions(options);
    for (let i = 0; i < QUICK_RETRIES; i++) {
      const message = this.#attemptReceive(undefined, false);
      if (message !== undefined) return message;
    }
    const offer = this.#capacity === 0 ? { slot: -1 } : undefined;
    const waitable = this.#waitable(
      "receive",
      untilDefined(() => this.#attemptReceive(offer, false)),
      this.#receiveWaiting,
      () => this.#isDeleted() || this.#queued() > 0,
      () => this.#recover(false),
      this.#receiveLock,
      this.#receiveLockWaiting,
    );
    if (offer === undefined) return waitFor(waitable, options);
    // Zero capacity: offer to take a message, so that a trySend can hand one over. The
    // attempt that takes a message withdraws the offer under the receive lock. With
    // every slot taken this receiver waits without offering.
    this.#lifetime.pin();
    offer.slot = this.#rendezvous.makeOffer();
    if (stepping) step("mailbox.receive.offered");
    try {
      return await waitFor(waitable, options);
    } catch (error) {
      if (offer.slot >= 0) {
        const slot = offer.slot;
        offer.slot = -1;
        if (!this.#rendezvous.withdrawOffer(slot)) {
          // A trySend claimed this receiver after publishing its message: take it,
          // unless another receiver already did.
          const message = this.#attemptReceive(undefined, true);
          if (message !== undefined) return message;
        }
      }
      throw error;
    } finally {
      if (offer.slot >= 0) this.#rendezvous.withdrawOffer(offer.slot);
      this.#lifetime.unpin();
    }
  }

  /**
   * Any message waiting (for receivers that wait on several stores at once). Repairs
   * the count left by a sender that died inside a send, so that its message is seen.
   */
  hasMessage(): boolean {
    if (this.#isDeleted()) return false;
    if (this.#queued() > 0) return true;
    if (!this.#sendPending()) return false;
    this.#recoverSender();
    return this.#sendPending() || this.#queued() > 0;
  }

  /**
   * Marks the store deleted (every handle's next operation throws), wakes every waiter
   * and removes its names. Handles stay valid until closed.
   */
  delete(): void {
    this.#assertOpen("delete");
    const words = this.#words;
    Atomics.store(words, I_DELETED, 1);
    for (
      const flag of [
        this.#sendWaiting,
        this.#receiveWaiting,
        this.#takenWaiting,
        this.#sendLockWaiting,
        this.#receiveLockWaiting,
      ]
    ) flag.wake();
    const name = this.#control.name;
    ignoreNotFound(() => SharedMemory.unlink(name));
    const first = Atomics.load(words, I_READ_SEGMENT);
    const last = Atomics.load(words, I_WRITE_SEGMENT);
    if (!unlinkSegments(name, words[I_TOKEN], first, last)) {
      throw this.#chain.corrupt(first, last);
    }
  }

  /** Releases this handle. Idempotent. */
  close(): void {
    this.#lifetime.close();
  }

  /** Deletes the store, then closes this handle. */
  deleteAndClose(): void {
    try {
      this.delete();
    } finally {
      this.close();
    }
  }

  // On close: flushes what this handle tallied, if each lock can be had within about a
  // millisecond (else that tally is lost: the counters are statistics).
  #flushOnClose(): void {
    if (this.#counters.unflushedSends && acquire(this.#sendLock, true)) {
      try {
        this.#counters.flushSent();
      } finally {
        this.#releaseSend();
      }
    }
    if (this.#counters.unflushedReceives && acquire(this.#receiveLock, true)) {
      try {
        this.#counters.flushReceived();
      } finally {
        this.#releaseReceive();
      }
    }
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, this.#what, this.#label);
  }

  #isDeleted(): boolean {
    return Atomics.load(this.#words, I_DELETED) !== 0;
  }

  #throwIfDeleted(operation: string): void {
    if (this.#isDeleted()) {
      throw new QueueRemovedError(ERRNO.EIDRM, operation, {
        objectName: this.#label,
        message: `Cannot ${operation}: ${this.#what} "${this.#label}" was deleted`,
      });
    }
  }

  #queued(): number {
    const queued = (Atomics.load(this.#words, I_SENT) - Atomics.load(this.#words, I_TAKEN)) | 0;
    return queued > 0 ? queued : 0;
  }

  #hasRoom(): boolean {
    return this.#capacity === UNBOUNDED || this.#queued() < Math.max(this.#capacity, 1);
  }

  // Rendezvous: whether message `sequence` of this handle was taken. A receiver killed
  // between its take and marking it leaves it pending; once TAKEN passed it, it counts
  // as taken (and lost with that receiver).
  #rendezvousTaken(sequence: number): boolean {
    const state = this.#rendezvous.state(sequence);
    if (state !== "pending") return state === "taken";
    return ((Atomics.load(this.#words, I_TAKEN) - sequence) | 0) >= 0;
  }

  #sendPending(): boolean {
    return Atomics.load(this.#words, I_SEND_INTENT) !== Atomics.load(this.#words, I_SENT);
  }

  // Under the send lock. TAKEN is on the receivers' cache line: it is re-read only when
  // the last value read says full (it only grows, so an old value is conservative), or
  // when 2^30 messages went by since (so that wrapping cannot fool the comparison).
  #hasRoomLocked(): boolean {
    if (this.#capacity === UNBOUNDED) return true;
    const limit = Math.max(this.#capacity, 1);
    const sent = this.#words[I_SENT]; // written only under the send lock, which we hold
    if (
      this.#takenRead && ((sent - this.#takenSeen) | 0) < limit &&
      ((sent - this.#sentWhenSeen) >>> 0) < 2 ** 30
    ) {
      return true;
    }
    this.#takenRead = true;
    this.#takenSeen = Atomics.load(this.#words, I_TAKEN);
    this.#sentWhenSeen = sent;
    return ((sent - this.#takenSeen) | 0) < limit;
  }

  // Takes the send lock and repairs what a sender that died holding it left.
  #lockSend(patient: boolean): boolean {
    if (!acquire(this.#sendLock, patient)) return false;
    if (this.#words[I_SEND_INTENT] !== this.#words[I_SENT]) {
      try {
        this.#repairSend();
      } catch (error) {
        this.#releaseSend();
        throw error;
      }
    }
    return true;
  }

  // Under the send lock: a sender died between announcing sequence SEND_INTENT and
  // counting it in SENT. Its record is in the chain or was taken (published), or never
  // got there. An empty chain tells which (TAKEN passed it or not); a non-empty one
  // cannot be read without taking, so the record counts as published.
  #repairSend(): void {
    const words = this.#words;
    const intent = words[I_SEND_INTENT];
    let published = true;
    if (acquire(this.#receiveLock, false)) {
      try {
        if (this.#chain.empty()) published = ((words[I_TAKEN] - intent) | 0) >= 0;
      } finally {
        this.#releaseReceive();
      }
    }
    if (published) words[I_SENT] = intent;
    Atomics.store(words, I_SEND_INTENT, words[I_SENT]);
    this.#receiveWaiting.wake(); // the count changed
    this.#sendWaiting.wake();
  }

  // Publishes a record; returns its sequence number, or undefined when full or busy.
  #attemptSend(record: Uint8Array, patient: boolean): number | undefined {
    const words = this.#words;
    if (!this.#lockSend(patient)) return undefined;
    let sequence: number;
    try {
      if (words[I_DELETED] !== 0) this.#throwIfDeleted("send");
      if (!this.#hasRoomLocked()) {
        if (stepping) step("mailbox.send.full");
        this.#counters.flushSent();
        return undefined;
      }
      sequence = (words[I_SENT] + 1) | 0;
      record[RECORD_SEQUENCE] = sequence & 0xff;
      record[RECORD_SEQUENCE + 1] = (sequence >>> 8) & 0xff;
      record[RECORD_SEQUENCE + 2] = (sequence >>> 16) & 0xff;
      record[RECORD_SEQUENCE + 3] = sequence >>> 24;
      if (this.#capacity === 0) {
        this.#rendezvous.publish(sequence);
      }
      // Plain write: the ring's publishing store orders it before the record appears.
      words[I_SEND_INTENT] = sequence;
      if (!this.#chain.publish(record)) {
        words[I_SEND_INTENT] = words[I_SENT];
        return undefined;
      }
      if (stepping) step("mailbox.send.published");
      // Plain writes under the lock: releasing it (a sequentially consistent store)
      // publishes them.
      words[I_SENT] = sequence;
      words[I_SEND_INTENT] = sequence;
      this.#counters.sent(record);
    } catch (error) {
      words[I_SEND_INTENT] = words[I_SENT]; // failed before publishing (ENOSPC, deleted)
      throw error;
    } finally {
      this.#releaseSend();
    }
    this.#receiveWaiting.wake();
    this.onPublish?.();
    return sequence;
  }

  // `offer`: this receiver's zero-capacity offer, withdrawn here when it takes a
  // message, before TAKEN makes room for the next send.
  #attemptReceive(
    offer: { slot: number } | undefined,
    patient: boolean,
  ): MailboxMessage | undefined {
    const words = this.#words;
    if (!acquire(this.#receiveLock, patient)) return undefined;
    let record: Uint8Array | undefined;
    let repaired = false;
    try {
      if (words[I_DELETED] !== 0) this.#throwIfDeleted("receive");
      while (true) {
        record = this.#chain.take();
        if (record === undefined) {
          this.#counters.flushReceived();
          // Empty now. If SENT (read after this look) is ahead of TAKEN, a second look
          // that finds the chain still empty proves every record it counts was taken:
          // by a receiver killed before counting its take. SENT is on the senders'
          // cache line: a receiver polling an empty mailbox reads it at its first empty
          // look and then once every EMPTY_LOOKS_PER_REPAIR, not at every look.
          if ((this.#emptyLooks++ & (EMPTY_LOOKS_PER_REPAIR - 1)) !== 0) break;
          const sent = Atomics.load(words, I_SENT);
          if (((sent - words[I_TAKEN]) | 0) <= 0) break;
          record = this.#chain.take();
          if (record === undefined) {
            words[I_TAKEN] = sent;
            repaired = true;
            break;
          }
        }
        if (stepping) step("mailbox.receive.taken");
        this.#emptyLooks = 0;
        const sequence = (record[RECORD_SEQUENCE] | (record[RECORD_SEQUENCE + 1] << 8) |
          (record[RECORD_SEQUENCE + 2] << 16) | (record[RECORD_SEQUENCE + 3] << 24)) | 0;
        const kept = this.#capacity !== 0 || this.#rendezvous.markTaken(sequence);
        // As SENT: a plain write under the lock. Only forward: a record from before a
        // repair cannot move it back.
        if (((sequence - words[I_TAKEN]) | 0) > 0) words[I_TAKEN] = sequence;
        if (kept) {
          this.#counters.received(record);
          break;
        }
        record = undefined; // its sender took it back: drop it and look again
        repaired = true;
      }
      if (record === undefined && stepping) step("mailbox.receive.empty");
      if (record !== undefined && offer !== undefined && offer.slot >= 0) {
        // False: claimed by a trySend, whose message this may be.
        this.#rendezvous.withdrawOffer(offer.slot);
        offer.slot = -1;
      }
    } finally {
      this.#releaseReceive();
    }
    if (record === undefined) {
      if (repaired) {
        this.#sendWaiting.wake();
        this.#takenWaiting.wake();
      }
      return undefined;
    }
    this.#sendWaiting.wake();
    if (this.#capacity === 0) this.#takenWaiting.wake();
    return this.#records.unpack(record);
  }

  // Rendezvous only: takes back this handle's published message `sequence` if no
  // receiver has taken it. Returns whether it did. The decision is one compare-and-swap
  // (lib/_rendezvous.ts), so it needs no lock; when both locks are free the record is also removed
  // (and not counted), otherwise receivers drop it when they reach it.
  #retract(sequence: number): boolean {
    if (this.#isDeleted()) return true;
    if (!this.#rendezvous.cancel(sequence)) return false;
    if (this.#lockSend(false)) {
      try {
        if (acquire(this.#receiveLock, false)) {
          const words = this.#words;
          try {
            // At capacity 0 at most one message is queued: still queued, it is this one.
            if (
              words[I_SENT] === sequence && ((words[I_TAKEN] - sequence) | 0) < 0 &&
              this.#chain.take() !== undefined
            ) {
              words[I_SENT] = (sequence - 1) | 0;
              words[I_SEND_INTENT] = words[I_SENT];
            }
          } finally {
            this.#releaseReceive();
          }
        }
      } finally {
        this.#releaseSend();
      }
    }
    this.#sendWaiting.wake();
    return true;
  }

  // Takes over locks whose holders died, repairing what they left; `room`: for senders
  // waiting for room, which a receiver killed before counting its take may hide.
  #recover(room: boolean): void {
    this.#recoverSender();
    if (this.#receiveLock.recoverFromDeadHolder()) this.#receiveLockWaiting.wake();
    if (room && !this.#hasRoom() && acquire(this.#receiveLock, false)) {
      const words = this.#words;
      let repaired = false;
      try {
        const sent = Atomics.load(words, I_SENT);
        if (((sent - words[I_TAKEN]) | 0) > 0 && this.#chain.empty()) {
          words[I_TAKEN] = sent;
          repaired = true;
        }
      } finally {
        this.#releaseReceive();
      }
      if (repaired) this.#sendWaiting.wake();
    }
  }

  // A sender that died inside a send: free its lock and repair its counts now (receivers
  // only look at the counts).
  #recoverSender(): void {
    const freed = this.#sendLock.recoverFromDeadHolder();
    if (!freed && !this.#sendPending()) return;
    if (this.#lockSend(false)) this.#releaseSend();
  }

  // Every release wakes those who sleep on the lock (a load when nobody does): an
  // attempt that fails (full, empty) releases it too.
  #releaseSend(): void {
    this.#sendLock.release();
    this.#sendLockWaiting.wake();
  }

  #releaseReceive(): void {
    this.#receiveLock.release();
    this.#receiveLockWaiting.wake();
  }

  // A waitable whose park sleeps on the lock's flag while another process holds the
  // lock (its release wakes that flag), else on `flag` until `ready()` may hold.
  #waitable<T>(
    operation: string,
    attempt: () => T | typeof PENDING,
    flag: FutexFlag,
    ready: () => boolean,
    recover: () => void,
    lock?: PidLock,
    lockFlag?: FutexFlag,
  ): Waitable<T> {
    return {
      lifetime: this.#lifetime,
      attempt,
      park: async (ms) => {
        recover();
        if (lock !== undefined && lock.held()) {
          lockFlag!.announce();
          step("wait.announced");
          if (lock.held()) {
            step("wait.sleep");
            await lockFlag!.sleep(ms);
          }
          return PENDING;
        }
        flag.announce();
        step("wait.announced");
        if (!ready() && !lock?.held()) {
          step("wait.sleep");
          await flag.sleep(ms);
        }
        return PENDING;
      },
      closedError: () => closedError(operation, this.#what, this.#label),
      timedOutError: (ms) => timedOutError(operation, this.#what, this.#label, ms),
    };
  }
}

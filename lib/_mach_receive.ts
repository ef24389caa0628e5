// The receive right of a Mach port (see lib/mach_port.ts for the model).
//
// The receiver drains its socket into a private queue whenever it looks for a message:
// the kernel's queue and this one together are the port's queue, and the slot count in
// the shared table (lib/_mach_queue.ts) covers both, so draining never makes room.
// Things the kernel reports as a hang-up become notifications queued here: the presence
// pipe of the send rights (no-senders), the once pipe of each send-once right made here
// (send-once), and the data socket of a watched send right (dead-name).
import { C, ERRNO } from "../ffi/constants.ts";
import { check, closedError, errnoError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import { MACH_NOTIFY, type MachNotification, MessageTooLargeError } from "./_mach_errors.ts";
import { mapReceivedMemory, ReceivedMemory } from "./_mach_memory.ts";
import { DEFAULT_QUEUE_LIMIT, MAX_QUEUE_LIMIT, QueueTable } from "./_mach_queue.ts";
import {
  type AllocateOptions,
  inheritableToken,
  type InheritedToken,
  type MachMessage,
  type MachReceiveOptions,
  makeSendOnceRight,
  makeSendRight,
  parseToken,
  SendOnceRight,
  SendRight,
} from "./_mach_send.ts";
import {
  closeAll,
  dupFd,
  FLAG_CACHED,
  FLAG_MSG_ACCEPTED,
  FLAG_VIA_SEND_ONCE,
  KIND_MEMORY,
  KIND_RECEIVE,
  KIND_SEND,
  KIND_SEND_ONCE,
  MAX_INLINE_BODY,
  PacketReceiver,
  pollAny,
  pollNow,
  type ReceivedPacket,
  ROLE_NOTIFY,
  ROLE_REPLY,
  seqpacketPair,
  type WireRight,
} from "./_mach_wire.ts";
import {
  cString,
  describe,
  validateInteger,
  validateOptions,
  validateString,
} from "./_validate.ts";
import { PENDING, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

const WHAT = "Mach port";
const HANGUP = C.POLLHUP | C.POLLERR;
// Receive attempts (one recvmsg(2) each) before parking in poll(2) on the pool: a
// short spin catches a reply a few microseconds away; a long one costs a shared CPU.
const RECEIVE_SPIN = 20;
// At most this many messages drained into this process: more stay in the kernel (whose
// socket buffer then holds senders back), so a flooding sender cannot grow this queue.
// Honest senders queue at most MAX_QUEUE_LIMIT plus the cached messages; only replies
// through send-once rights come on top.
const MAX_DRAINED = 4 * MAX_QUEUE_LIMIT;
const encoder = new TextEncoder();
let allocated = 0;

/** Makes a receive right over descriptors that arrived (receive end, data, table, presence). */
export let receiveRightFromWire: (fds: readonly number[], label: string) => ReceiveRight;

// One entry of the private queue: a packet from the socket (with the slot it holds, or
// -1), or a notification made here.
interface Entry {
  packet?: ReceivedPacket;
  slot: number;
  notification?: MachNotification;
  notificationBody?: Uint8Array;
}

/**
 * The receive right of a port: exactly one exists, held by one process. It makes send
 * and send-once rights, receives messages in order, sets the queue limit, and is told
 * when the last send right is gone. Closing it (or the death of its process) kills the
 * port: every send right becomes a dead name, queued messages are destroyed, and each
 * send-once right among them yields its send-once notification.
 *
 * @example Allocate, send, receive, no-senders
 * ```ts
 * import { MACH_NOTIFY, ReceiveRight } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using port = ReceiveRight.allocate({ queueLimit: 5, label: "demo" });
 * port.requestNoSenders();
 * const send = port.makeSend();
 * await send.send({ id: 1, body: new Uint8Array([1, 2, 3]) });
 * send.close();
 * using first = await port.receive({ timeout: 1000 });
 * assert.deepEqual([...first.body], [1, 2, 3]);
 * using last = await port.receive({ timeout: 1000 });
 * assert.equal(last.notification, "no-senders");
 * assert.equal(last.id, MACH_NOTIFY.NO_SENDERS);
 * ```
 */
export class ReceiveRight implements Disposable {
  /** A label for traces and errors. */
  readonly label: string;
  readonly #recv: number;
  readonly #data: number;
  readonly #table: QueueTable;
  readonly #presence: number;
  readonly #pendingOnce = new Map<number, number>();
  readonly #queue: Entry[] = [];
  readonly #heldSlots = new Set<number>();
  readonly #watches = new Set<SendRight>();
  readonly #receiver = new PacketReceiver();
  readonly #lifetime: Lifetime;
  #sequence = 0;
  #deferredError: unknown;
  #noSendersRequested = false;
  #moved = false;

  private constructor(fds: readonly number[], table: QueueTable, label: string) {
    [this.#recv, this.#data, , this.#presence] = fds;
    this.#table = table;
    this.label = label;
    this.#lifetime = new Lifetime(() => this.#release());
  }

  /** Creates a new port and returns its receive right. */
  static allocate(options: AllocateOptions = {}): ReceiveRight {
    const checked = validateOptions<AllocateOptions>(options, "allocate");
    const limit = checked.queueLimit === undefined
      ? DEFAULT_QUEUE_LIMIT
      : validateInteger(checked.queueLimit, "queueLimit", 1, MAX_QUEUE_LIMIT);
    const label = checked.label === undefined
      ? `port-${Deno.pid}-${++allocated}`
      : validateString(checked.label, "label");
    const { symbols } = libc();
    const fds: number[] = [];
    try {
      fds.push(...seqpacketPair(label));
      const table = QueueTable.create(limit, label);
      fds.push(table.fd);
      const pipe = new Int32Array(2);
      try {
        check(
          "pipe2",
          symbols.pipe2(new Uint8Array(pipe.buffer), C.O_CLOEXEC | C.O_NONBLOCK),
          label,
        );
      } catch (error) {
        table.close();
        fds.pop();
        throw error;
      }
      // No writer is kept: a send right opens its own (see makeSend), so the pipe hangs
      // up exactly when the last send right is gone.
      symbols.close(pipe[1]);
      fds.push(pipe[0]);
      return new ReceiveRight(fds, table, label);
    } catch (error) {
      closeAll(fds);
      throw error;
    }
  }

  /** The queue limit. */
  get queueLimit(): number {
    this.#assertOpen("read the queue limit of");
    return this.#table.limit;
  }

  /**
   * Sets the queue limit (1 to 1024). Lowering it evicts nothing: senders wait until
   * the queue is below the new limit.
   */
  setQueueLimit(limit: number): void {
    validateInteger(limit, "queueLimit", 1, MAX_QUEUE_LIMIT);
    this.#assertOpen("set the queue limit of");
    this.#table.setLimit(limit);
  }

  /** Messages counted against the limit now (queued, not yet received). */
  get queued(): number {
    this.#assertOpen("count the queue of");
    return this.#table.count;
  }

  /** Whether {@link close} was called (or the right was handed to a child). */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** Makes a send right to this port (Mach's MAKE_SEND). */
  makeSend(): SendRight {
    this.#assertOpen("make a send right to");
    const { symbols } = libc();
    const fds: number[] = [];
    try {
      fds.push(dupFd(this.#data, this.label));
      fds.push(dupFd(this.#table.fd, this.label));
      // A new writer of the presence pipe (opening a pipe through /proc works like a FIFO).
      fds.push(
        check(
          "open",
          symbols.open(
            cString(`/proc/self/fd/${this.#presence}`),
            C.O_WRONLY | C.O_NONBLOCK | C.O_CLOEXEC,
            0,
          ),
          this.label,
        ),
      );
    } catch (error) {
      closeAll(fds);
      throw error;
    }
    return makeSendRight(fds, this.label);
  }

  /**
   * Makes a send-once right to this port (Mach's MAKE_SEND_ONCE): it yields exactly one
   * message here, the one sent through it or a send-once notification.
   */
  makeSendOnce(): SendOnceRight {
    this.#assertOpen("make a send-once right to");
    const { symbols } = libc();
    const pipe = new Int32Array(2);
    check(
      "pipe2",
      symbols.pipe2(new Uint8Array(pipe.buffer), C.O_CLOEXEC | C.O_NONBLOCK),
      this.label,
    );
    let data = -1;
    try {
      data = dupFd(this.#data, this.label);
    } catch (error) {
      closeAll([pipe[0], pipe[1]]);
      throw error;
    }
    let onceId: number;
    do {
      [onceId] = crypto.getRandomValues(new Uint32Array(1));
    } while (onceId === 0 || this.#pendingOnce.has(onceId));
    this.#pendingOnce.set(onceId, pipe[0]);
    return makeSendOnceRight([data, pipe[1]], onceId, this.label);
  }

  /** @internal Undoes a makeSendOnce whose message was never sent (no notification). */
  forgetSendOnce(right: SendOnceRight): void {
    const fd = this.#pendingOnce.get(right.onceId);
    if (fd !== undefined) {
      this.#pendingOnce.delete(right.onceId);
      libc().symbols.close(fd);
    }
    right.consume();
  }

  /**
   * Asks for one no-senders notification, queued on this port when no send right to it
   * is left anywhere (in any process, or in a message in flight). If there are none
   * now, it comes at once.
   */
  requestNoSenders(): void {
    this.#assertOpen("request a no-senders notification on");
    this.#noSendersRequested = true;
  }

  /** @internal Queues a dead-name notification here when `right`'s port dies. */
  watchDeadName(right: SendRight): void {
    this.#assertOpen("watch for dead names with");
    this.#watches.add(right);
    right.watchers.add(this);
  }

  /** @internal Ends a dead-name watch (the send right was closed). */
  unwatchDeadName(right: SendRight): void {
    this.#watches.delete(right);
  }

  /**
   * Receives the next message: blocks, or waits at most `timeout` ms (0 polls), then
   * `TimedOutError`. A message whose body exceeds `maxSize` throws
   * {@link MessageTooLargeError}: with `large: true` it stays queued.
   */
  receive(options: MachReceiveOptions = {}): Promise<MachMessage> {
    let maxSize: number;
    let large: boolean;
    try {
      ({ maxSize, large } = validateReceiveOptions(options));
      validateWaitOptions({ timeout: options.timeout, signal: options.signal });
      this.#assertOpen("receive on");
      options.signal?.throwIfAborted();
      // A message queued now (the usual case under load): no wait loop, no promises.
      if (this.#queue.length > 0) {
        const result = this.#attempt(maxSize, large, false);
        if (result !== PENDING) return Promise.resolve(result);
      }
    } catch (error) {
      return Promise.reject(error);
    }
    // Hang-ups (notifications, lost slots) are looked at on the first attempt and after
    // each park, not on every spinning attempt: a spin is then one recvmsg(2) each.
    let eventsDue = true;
    return waitFor({
      lifetime: this.#lifetime,
      attempt: () => {
        const result = this.#attempt(maxSize, large, eventsDue);
        eventsDue = false;
        return result;
      },
      park: async (ms) => {
        const [fds, events] = this.#pollSet();
        await pollAny(fds, events, ms);
        eventsDue = true;
        return PENDING;
      },
      spin: RECEIVE_SPIN,
      closedError: () => closedError("receive on", WHAT, this.label),
      timedOutError: (ms) =>
        errnoError(ERRNO.ETIMEDOUT, "receive", {
          objectName: this.label,
          message: `Timed out after ${ms} ms: receive on ${WHAT} "${this.label}"`,
        }),
    }, options as WaitOptions);
  }

  /** The next message if one is queued now, else `undefined`. Never waits. */
  tryReceive(
    options: Omit<MachReceiveOptions, "timeout" | "signal"> = {},
  ): MachMessage | undefined {
    const { maxSize, large } = validateReceiveOptions(options);
    this.#assertOpen("receive on");
    const result = this.#attempt(maxSize, large, true);
    return result === PENDING ? undefined : result;
  }

  /** @internal What a port set polls for this member, and the member's lifetime. */
  memberOf(): { pollSet: () => [number[], number[]]; lifetime: Lifetime } {
    return { pollSet: () => this.#pollSet(), lifetime: this.#lifetime };
  }

  /** @internal One non-waiting receive, for a port set. */
  attemptReceive(maxSize: number, large: boolean): MachMessage | typeof PENDING {
    return this.#attempt(maxSize, large, true);
  }

  #pollSet(): [number[], number[]] {
    const fds = [this.#recv];
    const events: number[] = [C.POLLIN];
    for (const fd of this.#pendingOnce.values()) {
      fds.push(fd);
      events.push(0);
    }
    if (this.#noSendersRequested) {
      fds.push(this.#presence);
      events.push(0);
    }
    for (const right of this.#watches) {
      fds.push(right.dataFd);
      events.push(0);
    }
    return [fds, events];
  }

  #attempt(maxSize: number, large: boolean, events: boolean): MachMessage | typeof PENDING {
    if (this.#deferredError !== undefined) {
      const error = this.#deferredError;
      this.#deferredError = undefined;
      throw error;
    }
    if (this.#queue.length === 0) this.#drain();
    if (this.#queue.length === 0 && events) this.#checkEvents();
    const head = this.#queue[0];
    if (head === undefined) return PENDING;
    const size = head.packet?.body.length ?? 0;
    if (size > maxSize) {
      if (large) throw new MessageTooLargeError(this.label, size, maxSize, true);
      this.#queue.shift();
      this.#destroy(head);
      throw new MessageTooLargeError(this.label, size, maxSize, false);
    }
    this.#queue.shift();
    return this.#deliver(head);
  }

  // Moves the packets the socket holds into the private queue, up to MAX_DRAINED
  // queued; returns whether the socket is now empty.
  #drain(): boolean {
    while (this.#queue.length < MAX_DRAINED) {
      const packet = this.#receiver.receive(this.#recv, this.label, false);
      if (!packet) return true;
      let slot = -1;
      if (QueueTable.validSlot(packet.slot) && !this.#heldSlots.has(packet.slot)) {
        slot = packet.slot;
        this.#heldSlots.add(slot);
      }
      this.#queue.push({ packet, slot });
    }
    return false;
  }

  // Turns hang-ups into notifications, and frees slots lost by senders that died
  // between claiming and sending (see lib/_mach_queue.ts for why the order matters).
  #checkEvents(): void {
    const onceIds = [...this.#pendingOnce.keys()];
    const watched = [...this.#watches];
    const fds = [
      ...onceIds.map((id) => this.#pendingOnce.get(id)!),
      this.#presence,
      ...watched.map((right) => right.dataFd),
    ];
    const revents = pollNow(fds, fds.map(() => 0));
    const hungUpOnce = onceIds.filter((_, i) => (revents[i] & HANGUP) !== 0);
    const noSenders = this.#noSendersRequested && (revents[onceIds.length] & HANGUP) !== 0;
    const dead = watched.filter((_, i) => (revents[onceIds.length + 1 + i] & HANGUP) !== 0);
    const strays = this.#table.unlockedStrays(this.#heldSlots);
    // Lost slots and unused send-once rights are told apart from messages still in the
    // socket only once it is empty; with the queue full, later.
    const drained = hungUpOnce.length === 0 && strays.length === 0 || this.#drain();
    if (drained) {
      for (const slot of strays) if (!this.#heldSlots.has(slot)) this.#table.release(slot);
    }
    for (const id of drained ? hungUpOnce : []) {
      const used = this.#queue.some((entry) =>
        entry.packet !== undefined && (entry.packet.flags & FLAG_VIA_SEND_ONCE) !== 0 &&
        entry.packet.onceId === id
      );
      if (used) continue;
      libc().symbols.close(this.#pendingOnce.get(id)!);
      this.#pendingOnce.delete(id);
      this.#queue.push({ slot: -1, notification: "send-once" });
    }
    if (noSenders) {
      this.#noSendersRequested = false;
      this.#queue.push({ slot: -1, notification: "no-senders" });
    }
    for (const right of dead) {
      this.#watches.delete(right);
      right.watchers.delete(this);
      this.#queue.push({
        slot: -1,
        notification: "dead-name",
        notificationBody: encoder.encode(right.label),
      });
    }
  }

  #deliver(entry: Entry): MachMessage {
    const sequence = this.#sequence++;
    if (entry.notification !== undefined) {
      const ids: Record<MachNotification, number> = {
        "msg-accepted": MACH_NOTIFY.MSG_ACCEPTED,
        "no-senders": MACH_NOTIFY.NO_SENDERS,
        "send-once": MACH_NOTIFY.SEND_ONCE,
        "dead-name": MACH_NOTIFY.DEAD_NAME,
      };
      return message(ids[entry.notification], entry.notificationBody ?? new Uint8Array(0), {
        sender: undefined,
        notification: entry.notification,
        sequence,
      });
    }
    const packet = entry.packet!;
    this.#settle(entry);
    const label = `from pid ${packet.pid}`;
    let reply: SendRight | SendOnceRight | undefined;
    const rights: (SendRight | SendOnceRight | ReceiveRight)[] = [];
    let notify: SendRight | undefined;
    const made: (SendRight | SendOnceRight | ReceiveRight | ReceivedMemory)[] = [];
    const memory: ReceivedMemory[] = [];
    try {
      for (const [i, wire] of packet.rights.entries()) {
        let right: SendRight | SendOnceRight | ReceiveRight | ReceivedMemory;
        try {
          right = wire.kind === KIND_MEMORY
            ? mapReceivedMemory(wire.fds[0], this.label)
            : wire.kind === KIND_SEND
            ? makeSendRight(wire.fds, label)
            : wire.kind === KIND_SEND_ONCE
            ? makeSendOnceRight(wire.fds, wire.onceId, label)
            : receiveRightFromWire(wire.fds, label);
        } catch (error) {
          // This right's descriptors are closed by its constructor; close the rest.
          for (const rest of packet.rights.slice(i + 1)) closeAll(rest.fds);
          throw error;
        }
        made.push(right);
        if (right instanceof ReceivedMemory) memory.push(right);
        else if (
          wire.role === ROLE_REPLY && reply === undefined && !(right instanceof ReceiveRight)
        ) {
          reply = right;
        } else if (wire.role === ROLE_NOTIFY && right instanceof SendRight) notify = right;
        else rights.push(right);
      }
    } catch (error) {
      for (const right of made) right.close();
      throw error;
    }
    // Still cached when taken (the queue never had room): msg-accepted now.
    if (notify !== undefined) {
      if ((packet.flags & FLAG_CACHED) !== 0) this.#sendAccepted(notify);
      notify.close();
    }
    return message(packet.id, packet.body, {
      sender: Object.freeze({ pid: packet.pid, uid: packet.uid, gid: packet.gid }),
      notification: (packet.flags & FLAG_MSG_ACCEPTED) !== 0 ? "msg-accepted" : undefined,
      sequence,
      reply,
      rights,
      memory,
    });
  }

  // The message left the queue: free its slot and match its send-once right.
  #settle(entry: Entry): void {
    const packet = entry.packet!;
    if (entry.slot >= 0) {
      this.#heldSlots.delete(entry.slot);
      this.#table.release(entry.slot);
      if (!QueueTable.isCached(entry.slot) && !this.#lifetime.closed) this.#acceptCached();
    }
    if ((packet.flags & FLAG_VIA_SEND_ONCE) !== 0) {
      const fd = this.#pendingOnce.get(packet.onceId);
      if (fd !== undefined) {
        libc().symbols.close(fd);
        this.#pendingOnce.delete(packet.onceId);
      }
    }
  }

  // The textbook's cached send: once the queue has room, a cached message is put in it
  // (it takes a slot below the limit), its sender may cache another, and the sender is
  // told through its notify right. Mach 3 sends msg-accepted only when the message is
  // received.
  #acceptCached(): void {
    if (!this.#table.hasCached()) return;
    try {
      this.#drain();
    } catch (error) {
      // A corrupt packet was consumed: report it to the next receive.
      this.#deferredError ??= error;
    }
    for (const entry of this.#queue) {
      if (entry.slot < 0 || !QueueTable.isCached(entry.slot)) continue;
      const slot = this.#table.claimForReceiver();
      if (slot < 0) return;
      this.#heldSlots.delete(entry.slot);
      this.#table.release(entry.slot);
      this.#heldSlots.add(slot);
      entry.slot = slot;
      this.#notifyAccepted(entry.packet!);
    }
  }

  // Sends msg-accepted through a cached message's notify right, and drops that right.
  #notifyAccepted(packet: ReceivedPacket): void {
    const index = packet.rights.findIndex((wire) => wire.role === ROLE_NOTIFY);
    if (index < 0 || (packet.flags & FLAG_CACHED) === 0) return;
    const [wire] = packet.rights.splice(index, 1);
    let notify: SendRight;
    try {
      notify = makeSendRight(wire.fds, this.label);
    } catch {
      return; // not a send right: its descriptors are closed, there is nobody to tell
    }
    try {
      this.#sendAccepted(notify);
    } finally {
      notify.close();
    }
  }

  #sendAccepted(notify: SendRight): void {
    try {
      notify.sendPacket({
        flags: FLAG_MSG_ACCEPTED,
        id: MACH_NOTIFY.MSG_ACCEPTED,
        slot: -1,
        onceId: 0,
        body: encoder.encode(this.label),
        rights: [],
      });
    } catch {
      // The notify port is the sender's business: a failure there loses only the
      // notification, never this message.
    }
  }

  // Destroys a queued message: its rights are released (a send-once right among them
  // yields its notification at its own port).
  #destroy(entry: Entry): void {
    if (entry.packet === undefined) return;
    this.#settle(entry);
    for (const wire of entry.packet.rights) closeAll(wire.fds);
  }

  /**
   * Hands the receive right to a child process (Mach's MOVE_RECEIVE, across a spawn):
   * returns a token for {@link ReceiveRight.fromInherited} and closes this handle
   * without killing the port. Messages already drained into this process and pending
   * send-once rights stay behind, so hand over a port before using it. Dispose the
   * token once the child has started.
   */
  inheritable(): InheritedToken {
    this.#assertMovable();
    const token = inheritableToken(
      "receive",
      [this.#recv, this.#data, this.#table.fd, this.#presence],
      this.label,
    );
    this.#moved = true;
    this.close();
    return token;
  }

  /** Takes a receive right from a token made by {@link ReceiveRight.inheritable}. */
  static fromInherited(token: string): ReceiveRight {
    const { fds, label } = parseToken(token, "receive", 4);
    return receiveRightFromWire(fds, label);
  }

  /** @internal The wire form of this right, for MOVE_RECEIVE. */
  wire(role: number): WireRight {
    this.#assertMovable();
    return {
      kind: KIND_RECEIVE,
      role,
      fds: [this.#recv, this.#data, this.#table.fd, this.#presence],
      onceId: 0,
    };
  }

  /** @internal The right moved into a message: close here without killing the port. */
  handOver(): void {
    this.#moved = true;
    this.close();
  }

  static {
    receiveRightFromWire = (fds, label) => ReceiveRight.#fromWire(fds, label);
  }

  // A receive right that arrived in a message (descriptors taken over).
  static #fromWire(fds: readonly number[], label: string): ReceiveRight {
    let table: QueueTable;
    try {
      table = QueueTable.attach(fds[2], label);
    } catch (error) {
      closeAll([fds[0], fds[1], fds[3]]);
      throw error;
    }
    return new ReceiveRight([fds[0], fds[1], table.fd, fds[3]], table, label);
  }

  #assertMovable(): void {
    this.#assertOpen("move");
    if (
      this.#queue.length > 0 || this.#pendingOnce.size > 0 || this.#watches.size > 0 ||
      this.#noSendersRequested
    ) {
      throw new TypeError(
        `Cannot move the receive right of ${WHAT} "${this.label}": messages, send-once ` +
          `rights, dead-name watches or a no-senders request of it are pending in this ` +
          `process (move a port before receiving on it)`,
      );
    }
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) {
      throw closedError(operation, this.#moved ? `${WHAT} (handed over)` : WHAT, this.label);
    }
  }

  /**
   * Destroys the receive right, which kills the port (unless it was handed over):
   * senders see a dead name, waiting senders fail, queued messages are destroyed.
   */
  close(): void {
    if (this.#lifetime.closed) return;
    if (!this.#moved) {
      this.#table.markDead();
      // Senders see the port die at once, and a receive waiting in poll(2) returns.
      libc().symbols.shutdown(this.#recv, C.SHUT_RDWR);
    }
    this.#lifetime.close();
  }

  /** Resolves once closed and no receive still waits in poll(2) on the thread pool. */
  get released(): Promise<void> {
    return this.#lifetime.released;
  }

  #release(): void {
    for (const entry of this.#queue.splice(0)) this.#destroy(entry);
    closeAll([...this.#pendingOnce.values()]);
    this.#pendingOnce.clear();
    for (const right of this.#watches) right.watchers.delete(this);
    this.#watches.clear();
    this.#table.close();
    closeAll([this.#recv, this.#data, this.#presence]);
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Checks {@link MachReceiveOptions} (without the wait options). */
export function validateReceiveOptions(options: unknown): { maxSize: number; large: boolean } {
  const checked = validateOptions<MachReceiveOptions>(options, "receive");
  const maxSize = checked.maxSize === undefined
    ? MAX_INLINE_BODY
    : validateInteger(checked.maxSize, "maxSize", 0);
  if (checked.large !== undefined && typeof checked.large !== "boolean") {
    throw new TypeError(`Invalid large: expected a boolean, got ${describe(checked.large)}`);
  }
  return { maxSize, large: checked.large === true };
}

function message(
  id: number,
  body: Uint8Array,
  fields: {
    sender: MachMessage["sender"];
    notification: MachNotification | undefined;
    sequence: number;
    reply?: SendRight | SendOnceRight;
    rights?: (SendRight | SendOnceRight | ReceiveRight)[];
    memory?: ReceivedMemory[];
  },
): MachMessage {
  const rights = Object.freeze(fields.rights ?? []);
  const memory = Object.freeze(fields.memory ?? []);
  return {
    id,
    body,
    reply: fields.reply,
    rights,
    sender: fields.sender,
    notification: fields.notification,
    sequence: fields.sequence,
    memory,
    [Symbol.dispose]() {
      fields.reply?.close();
      for (const right of rights) right.close();
      for (const region of memory) region.close();
    },
  };
}

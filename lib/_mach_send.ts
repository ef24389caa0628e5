// Send and send-once rights of Mach ports (see lib/mach_port.ts for the model).
import { C, ERRNO } from "../ffi/constants.ts";
import { closedError } from "../ffi/errno.ts";
import { futexWaitable } from "./_futex.ts";
import { Lifetime } from "./_lifetime.ts";
import { DeadNameError, NotifyInProgressError, QueueFullError } from "./_mach_errors.ts";
import type { OutOfLineMemory } from "./_mach_memory.ts";
import { QueueTable } from "./_mach_queue.ts";
import {
  closeAll,
  dupFd,
  FLAG_CACHED,
  FLAG_VIA_SEND_ONCE,
  KIND_SEND,
  KIND_SEND_ONCE,
  PacketSender,
  peerGone,
  pollAny,
  ROLE_BODY,
  ROLE_NOTIFY,
  ROLE_REPLY,
  type WirePacket,
  type WireRight,
} from "./_mach_wire.ts";
import {
  inheritableToken,
  type InheritedToken,
  type OutgoingMessage,
  parseToken,
  type RightTransfer,
  type SendOptions,
  type SendResult,
  validateMessage,
  validateSendOptions,
} from "./_mach_message.ts";
import { ReceiveRight } from "./_mach_receive.ts";
import { describe } from "./_validate.ts";
import { PENDING, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

const WHAT = "Mach port";

function timedOutFull(port: string, ms: number): QueueFullError {
  return new QueueFullError(ERRNO.ETIMEDOUT, "send", {
    objectName: port,
    message: ms === 0
      ? `Queue of Mach port "${port}" is full (send with timeout 0 returns at once)`
      : `Queue of Mach port "${port}" stayed full for ${ms} ms`,
  });
}

/** Makes a send right over descriptors this process owns (data, table, presence). */
export let makeSendRight: (fds: readonly number[], label: string) => SendRight;
/** Makes a send-once right over descriptors this process owns (data, once pipe). */
export let makeSendOnceRight: (
  fds: readonly number[],
  onceId: number,
  label: string,
) => SendOnceRight;

export function deadNameError(port: string, operation = "send"): DeadNameError {
  return new DeadNameError(ERRNO.EPIPE, operation, {
    objectName: port,
    message: `Cannot ${operation}: Mach port "${port}" is dead (its receive right was ` +
      `destroyed); this right is a dead name`,
  });
}

// What a right does on the way out: its wire form, then what to do after the send
// succeeded (consume a moved handle, close temporaries) or failed (undo a make).
export interface PreparedRight {
  wire: WireRight;
  sent(): void;
  failed(): void;
}

/**
 * A send right: lets its holder queue messages on one port. Copies (user references)
 * are made with {@link copy}; each is closed separately. When the port dies the right
 * becomes a dead name and sends throw {@link DeadNameError}.
 *
 * @example A port, a send right, a message
 * ```ts
 * import { ReceiveRight } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using port = ReceiveRight.allocate();
 * using send = port.makeSend();
 * await send.send({ id: 7, body: new TextEncoder().encode("hello") });
 * using message = await port.receive({ timeout: 1000 });
 * assert.equal(message.id, 7);
 * assert.equal(message.sender?.pid, Deno.pid);
 * ```
 */
export class SendRight implements Disposable {
  readonly #data: number;
  readonly #presence: number;
  readonly #table: QueueTable;
  readonly #lifetime: Lifetime;
  readonly #sender = new PacketSender();
  /** The label of the port, for traces and errors. */
  readonly label: string;
  #moved = false;
  /** Receive rights of this process watching this right for a dead name. */
  readonly watchers: Set<ReceiveRight> = new Set();

  static {
    makeSendRight = (fds, label) => new SendRight(fds, label);
  }

  // Takes over `fds` (data socket, queue table, presence pipe). Private: a handle made
  // over arbitrary descriptor numbers would close whatever they are.
  private constructor(fds: readonly number[], label: string) {
    const [data, state, presence] = fds;
    this.label = label;
    try {
      this.#table = QueueTable.attach(state, label);
    } catch (error) {
      closeAll([data, presence]);
      throw error;
    }
    this.#data = data;
    this.#presence = presence;
    this.#lifetime = new Lifetime(() => {
      this.#table.close();
      closeAll([this.#data, this.#presence]);
    });
  }

  /** @internal The data socket's descriptor (for dead-name watches). */
  get dataFd(): number {
    return this.#data;
  }

  /** Whether the port is dead (this right is a dead name). */
  get dead(): boolean {
    this.#assertOpen("check");
    return this.#table.dead || peerGone(this.#data);
  }

  /** Whether {@link close} was called or the right was moved into a message. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** Another reference to the same port (Mach's user reference), closed separately. */
  copy(): SendRight {
    this.#assertOpen("copy");
    const fds: number[] = [];
    try {
      fds.push(dupFd(this.#data, this.label));
      fds.push(dupFd(this.#table.fd, this.label));
      fds.push(dupFd(this.#presence, this.label));
    } catch (error) {
      closeAll(fds);
      throw error;
    }
    return makeSendRight(fds, this.label);
  }

  /**
   * Asks for a dead-name notification on `notify` (a receive right of this process)
   * when this right's port dies. It is delivered once; closing this right cancels it.
   */
  requestDeadName(notify: ReceiveRight): void {
    if (!(notify instanceof ReceiveRight)) {
      throw new TypeError(`Invalid notify port: expected a ReceiveRight, got ${describe(notify)}`);
    }
    this.#assertOpen("request a dead-name notification on");
    notify.watchDeadName(this);
  }

  /**
   * Queues `message` on the port. A full queue makes it wait, time out, or (with
   * `notify`) cache the message; see {@link SendOptions}. On any failure the message and
   * its rights stay with the caller.
   */
  send(message: OutgoingMessage, options: SendOptions = {}): Promise<SendResult> {
    try {
      const checked = validateMessage(message);
      const { notify } = validateSendOptions(options);
      this.#assertOpen("send");
      options.signal?.throwIfAborted();
      // Room now (the usual case): done without the wait loop's promises.
      const sending = new Sending(this, checked, notify);
      const result = sending.attempt();
      if (result !== PENDING) return Promise.resolve(result);
      return this.#send(sending, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Queues `message` if there is room now: `"sent"`, `"will-notify"` (cached, with
   * `notify`) or `"full"`. Never waits.
   */
  trySend(message: OutgoingMessage, options: { notify?: SendRight } = {}): SendResult | "full" {
    const checked = validateMessage(message);
    const { notify } = validateSendOptions(options);
    this.#assertOpen("send");
    const sending = new Sending(this, checked, notify);
    const result = sending.attempt();
    if (result === PENDING) {
      sending.giveUp();
      return "full";
    }
    return result;
  }

  async #send(sending: Sending, options: WaitOptions): Promise<SendResult> {
    const table = this.#table;
    try {
      return await waitFor({
        ...futexWaitable({
          lifetime: this.#lifetime,
          operation: "send",
          what: WHAT,
          name: this.label,
          attempt: () => sending.attempt(),
          flag: table.flag,
          ready: () => table.dead || table.hasRoom() || peerGone(this.#data),
        }),
        park: async (ms) => {
          if (sending.claimed) {
            // A slot is ours; the socket buffer (bytes) is what is full.
            await pollAny([this.#data], [C.POLLOUT], ms);
            return PENDING;
          }
          table.flag.announce();
          if (!(table.dead || table.hasRoom() || peerGone(this.#data))) {
            await table.flag.sleep(ms);
          }
          return PENDING;
        },
        timedOutError: (ms) => timedOutFull(this.label, ms),
        spin: 0,
      }, options);
    } finally {
      sending.giveUp();
    }
  }

  /** @internal One non-waiting sendmsg of a packet on this port. */
  sendPacket(packet: WirePacket): "sent" | "would-block" | "dead" {
    return this.#sender.send(this.#data, packet, this.label);
  }

  /** @internal The port's queue table. */
  get table(): QueueTable {
    return this.#table;
  }

  /** @internal The wire form of this right (the kernel duplicates the descriptors). */
  wire(role: number): WireRight {
    this.#assertOpen("send");
    return { kind: KIND_SEND, role, fds: [this.#data, this.#table.fd, this.#presence], onceId: 0 };
  }

  /** @internal Marks the right as moved into a message and closes it here. */
  consume(): void {
    this.#moved = true;
    this.close();
  }

  /**
   * Makes the right inheritable by a child process: returns a token to pass to the child
   * (argv or environment), where {@link SendRight.fromInherited} takes it. Dispose the
   * result once the child has started: this process keeps its own right.
   */
  inheritable(): InheritedToken {
    this.#assertOpen("pass on");
    return inheritableToken("send", [this.#data, this.#table.fd, this.#presence], this.label);
  }

  /** Takes a send right from a token made by {@link SendRight.inheritable} in the parent. */
  static fromInherited(token: string): SendRight {
    const { fds, label } = parseToken(token, "send", 3);
    return makeSendRight(fds, label);
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) {
      throw closedError(
        operation,
        this.#moved ? `${WHAT} send right (moved into a message)` : `${WHAT} send right`,
        this.label,
      );
    }
  }

  /** Releases this reference (idempotent). The last one gone is the no-senders moment. */
  close(): void {
    if (!this.#lifetime.close()) return;
    for (const watcher of this.watchers) watcher.unwatchDeadName(this);
    this.watchers.clear();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// One send in progress: the slot it claimed, the rights it prepared.
class Sending {
  readonly #right: SendRight;
  readonly #message: OutgoingMessage;
  readonly #notify: SendRight | undefined;
  #slot = -1;
  #cached = false;

  constructor(right: SendRight, message: OutgoingMessage, notify: SendRight | undefined) {
    this.#right = right;
    this.#message = message;
    this.#notify = notify;
  }

  get claimed(): boolean {
    return this.#slot >= 0;
  }

  attempt(): SendResult | typeof PENDING {
    try {
      return this.#attempt();
    } catch (error) {
      // A send that failed gives its slot back at once (the message stays the caller's).
      this.giveUp();
      throw error;
    }
  }

  #attempt(): SendResult | typeof PENDING {
    const right = this.#right;
    const table = right.table;
    if (table.dead) throw deadNameError(right.label);
    if (this.#slot < 0) {
      this.#slot = table.claim();
      if (this.#slot < 0 && this.#notify !== undefined) {
        const cached = table.claimCached(Deno.pid);
        if (cached === -2) {
          throw new NotifyInProgressError(ERRNO.EALREADY, "send", {
            objectName: right.label,
            message: `Cannot cache another message on Mach port "${right.label}": this ` +
              `process's cached message there has not been accepted yet (notify in progress)`,
          });
        }
        if (cached >= 0) {
          this.#slot = cached;
          this.#cached = true;
        }
      }
      if (this.#slot < 0) {
        if (peerGone(right.dataFd)) throw deadNameError(right.label);
        return PENDING;
      }
    }
    const prepared: PreparedRight[] = [];
    try {
      const { reply, rights = [] } = this.#message;
      if (reply) prepared.push(prepare(reply, ROLE_REPLY));
      for (const transfer of rights) prepared.push(prepare(transfer, ROLE_BODY));
      for (const region of this.#message.memory ?? []) prepared.push(prepareMemory(region));
      if (this.#cached) prepared.push(prepare({ copySend: this.#notify! }, ROLE_NOTIFY));
    } catch (error) {
      for (const each of prepared) each.failed();
      throw error;
    }
    const outcome = right.sendPacket({
      flags: this.#cached ? FLAG_CACHED : 0,
      id: this.#message.id,
      slot: this.#slot,
      onceId: 0,
      body: this.#message.body ?? new Uint8Array(0),
      rights: prepared.map((each) => each.wire),
    });
    if (outcome !== "sent") {
      for (const each of prepared) each.failed();
      if (outcome === "dead") throw deadNameError(right.label);
      return PENDING;
    }
    table.unlock(this.#slot);
    this.#slot = -1;
    for (const each of prepared) each.sent();
    return this.#cached ? "will-notify" : "sent";
  }

  /** Releases a slot claimed for a message that was not sent. */
  giveUp(): void {
    if (this.#slot >= 0) this.#right.table.abandon(this.#slot);
    this.#slot = -1;
  }
}

function prepareMemory(region: OutOfLineMemory): PreparedRight {
  return { wire: region.wire(ROLE_BODY), sent: () => region.consume(), failed: () => {} };
}

export function prepare(transfer: RightTransfer, role: number): PreparedRight {
  const nothing = () => {};
  if ("copySend" in transfer) {
    return { wire: transfer.copySend.wire(role), sent: nothing, failed: nothing };
  }
  if ("moveSend" in transfer) {
    const right = transfer.moveSend;
    return { wire: right.wire(role), sent: () => right.consume(), failed: nothing };
  }
  if ("moveReceive" in transfer) {
    const port = transfer.moveReceive;
    return { wire: port.wire(role), sent: () => port.handOver(), failed: nothing };
  }
  if ("moveSendOnce" in transfer) {
    const right = transfer.moveSendOnce;
    return { wire: right.wire(role), sent: () => right.consume(), failed: nothing };
  }
  if ("makeSend" in transfer) {
    const made = transfer.makeSend.makeSend();
    return { wire: made.wire(role), sent: () => made.close(), failed: () => made.close() };
  }
  const port = transfer.makeSendOnce;
  const made = port.makeSendOnce();
  return {
    wire: made.wire(role),
    sent: () => made.consume(),
    failed: () => port.forgetSendOnce(made),
  };
}

/**
 * A send-once right: good for exactly one message, which is never refused for a full
 * queue (how servers always manage to reply). If it is closed unused, or its holder
 * dies, the port receives a send-once notification instead: every send-once right
 * yields exactly one message.
 *
 * @example The reply pattern
 * ```ts
 * import { ReceiveRight } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using server = ReceiveRight.allocate({ label: "server" });
 * using client = ReceiveRight.allocate({ label: "client" });
 * using toServer = server.makeSend();
 * await toServer.send({ id: 1, reply: { makeSendOnce: client } });
 * using request = await server.receive({ timeout: 1000 });
 * await request.reply!.send({ id: 2 });
 * using reply = await client.receive({ timeout: 1000 });
 * assert.equal(reply.id, 2);
 * ```
 */
export class SendOnceRight implements Disposable {
  readonly #data: number;
  readonly #once: number;
  /** @internal The id matching this right to its port's pending table. */
  readonly onceId: number;
  readonly #lifetime: Lifetime;
  readonly #sender = new PacketSender();
  /** The label of the port, for traces and errors. */
  readonly label: string;
  #used = false;

  static {
    makeSendOnceRight = (fds, onceId, label) => new SendOnceRight(fds, onceId, label);
  }

  // Takes over `fds` (data socket, once pipe); private as SendRight's.
  private constructor(fds: readonly number[], onceId: number, label: string) {
    this.#data = fds[0];
    this.#once = fds[1];
    this.onceId = onceId;
    this.label = label;
    this.#lifetime = new Lifetime(() => closeAll([this.#data, this.#once]));
  }

  /** Whether the right was used, moved, or closed. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * Sends the one message this right allows and consumes the right. Never waits for
   * room in the queue; waits only while the socket buffer is full. Throws
   * {@link DeadNameError} if the port died (the right is then consumed too).
   */
  send(message: OutgoingMessage, options: WaitOptions = {}): Promise<void> {
    try {
      const checked = validateMessage(message);
      validateWaitOptions(options);
      // Mach consumes the destination right first: it cannot also travel in the body.
      for (const transfer of [checked.reply, ...(checked.rights ?? [])]) {
        if (
          transfer !== undefined && "moveSendOnce" in transfer && transfer.moveSendOnce === this
        ) {
          throw new TypeError(
            `Invalid message: a send-once right cannot move inside the message it sends`,
          );
        }
      }
      if (this.#lifetime.closed) {
        throw closedError(
          "send",
          `${WHAT} send-once right (${this.#used ? "already used" : "closed"})`,
          this.label,
        );
      }
      return waitFor({
        lifetime: this.#lifetime,
        attempt: () => this.#attempt(checked),
        park: async (ms) => {
          await pollAny([this.#data], [C.POLLOUT], ms);
          return PENDING;
        },
        closedError: () => closedError("send", `${WHAT} send-once right`, this.label),
        timedOutError: (ms) => timedOutFull(this.label, ms),
        spin: 0,
      }, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #attempt(message: OutgoingMessage): void | typeof PENDING {
    const prepared: PreparedRight[] = [];
    try {
      if (message.reply) prepared.push(prepare(message.reply, ROLE_REPLY));
      for (const transfer of message.rights ?? []) prepared.push(prepare(transfer, ROLE_BODY));
      for (const region of message.memory ?? []) prepared.push(prepareMemory(region));
    } catch (error) {
      for (const each of prepared) each.failed();
      throw error;
    }
    const outcome = this.#sender.send(this.#data, {
      flags: FLAG_VIA_SEND_ONCE,
      id: message.id,
      slot: -1,
      onceId: this.onceId,
      body: message.body ?? new Uint8Array(0),
      rights: prepared.map((each) => each.wire),
    }, this.label);
    if (outcome === "would-block") {
      for (const each of prepared) each.failed();
      return PENDING;
    }
    if (outcome === "dead") {
      for (const each of prepared) each.failed();
      this.consume();
      throw deadNameError(this.label);
    }
    for (const each of prepared) each.sent();
    this.consume();
  }

  /** @internal The wire form of this right. */
  wire(role: number): WireRight {
    return { kind: KIND_SEND_ONCE, role, fds: [this.#data, this.#once], onceId: this.onceId };
  }

  /** @internal Marks the right used (or moved) and closes it here. */
  consume(): void {
    this.#used = true;
    this.#lifetime.close();
  }

  /**
   * Destroys the right. If it was never used, the port gets a send-once notification
   * (from the kernel's side: this closes the last descriptor of its once pipe).
   */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

export {
  type AllocateOptions,
  inheritableToken,
  type InheritedToken,
  type MachMessage,
  type MachReceiveOptions,
  type MachSender,
  type OutgoingMessage,
  parseToken,
  type RightTransfer,
  type SendOptions,
  type SendResult,
} from "./_mach_message.ts";

// Port sets: one receive over several ports (Mach's MACH_PORT_RIGHT_PORT_SET).
import { closedError, errnoError } from "../ffi/errno.ts";
import { ERRNO } from "../ffi/constants.ts";
import { Lifetime } from "./_lifetime.ts";
import { ReceiveRight, validateReceiveOptions } from "./_mach_receive.ts";
import type { MachMessage, MachReceiveOptions } from "./_mach_send.ts";
import { pollAny } from "./_mach_wire.ts";
import { describe, validateOptions, validateString } from "./_validate.ts";
import { PENDING, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

const WHAT = "Mach port set";
let allocated = 0;

/** A message received through a {@link PortSet}, with the member it came to. */
export interface PortSetMessage {
  /** The member port the message was queued on. */
  readonly port: ReceiveRight;
  /** The message. */
  readonly message: MachMessage;
}

/**
 * A port set: receives from whichever member port has a message, taking members in
 * turn so that a busy port cannot starve the others, and says which member it was.
 * The set holds no rights: members stay owned (and closed) by the caller; a closed
 * member leaves the set.
 *
 * @example Serving two ports with one receive
 * ```ts
 * import { PortSet, ReceiveRight } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using a = ReceiveRight.allocate({ label: "a" });
 * using b = ReceiveRight.allocate({ label: "b" });
 * using set = PortSet.allocate();
 * set.add(a);
 * set.add(b);
 * using toB = b.makeSend();
 * await toB.send({ id: 2 });
 * const { port, message } = await set.receive({ timeout: 1000 });
 * assert.equal(port, b);
 * assert.equal(message.id, 2);
 * message[Symbol.dispose]();
 * ```
 */
export class PortSet implements Disposable {
  /** A label for traces and errors. */
  readonly label: string;
  readonly #members: ReceiveRight[] = [];
  readonly #lifetime = new Lifetime(() => {});
  #next = 0;

  private constructor(label: string) {
    this.label = label;
  }

  /** A new, empty port set. */
  static allocate(options: { label?: string } = {}): PortSet {
    const { label } = validateOptions<{ label?: string }>(options, "port set");
    return new PortSet(
      label === undefined ? `port-set-${Deno.pid}-${++allocated}` : validateString(label, "label"),
    );
  }

  /** The member ports. */
  get members(): readonly ReceiveRight[] {
    this.#prune();
    return [...this.#members];
  }

  /** Adds a port (idempotent). */
  add(port: ReceiveRight): void {
    if (!(port instanceof ReceiveRight)) {
      throw new TypeError(`Invalid member: expected a ReceiveRight, got ${describe(port)}`);
    }
    this.#assertOpen("add to");
    if (port.closed) throw closedError("add to a port set", "Mach port", port.label);
    if (!this.#members.includes(port)) this.#members.push(port);
  }

  /** Removes a port; returns whether it was a member. */
  remove(port: ReceiveRight): boolean {
    this.#assertOpen("remove from");
    const index = this.#members.indexOf(port);
    if (index < 0) return false;
    this.#members.splice(index, 1);
    return true;
  }

  /** Receives the next message of any member (options as {@link ReceiveRight.receive}). */
  receive(options: MachReceiveOptions = {}): Promise<PortSetMessage> {
    let checked: { maxSize: number; large: boolean };
    try {
      checked = validateReceiveOptions(options);
      validateWaitOptions({ timeout: options.timeout, signal: options.signal });
      this.#assertOpen("receive on");
    } catch (error) {
      return Promise.reject(error);
    }
    return waitFor({
      lifetime: this.#lifetime,
      attempt: () => this.#attempt(checked.maxSize, checked.large),
      park: async (ms) => {
        this.#prune();
        const members = this.#members.map((port) => port.memberOf());
        // Members' descriptors stay open while the pool thread polls them.
        for (const member of members) member.lifetime.pin();
        try {
          const fds: number[] = [];
          const events: number[] = [];
          for (const member of members) {
            const [f, e] = member.pollSet();
            fds.push(...f);
            events.push(...e);
          }
          if (fds.length === 0) await new Promise((resolve) => setTimeout(resolve, ms));
          else await pollAny(fds, events, ms);
        } finally {
          for (const member of members) member.lifetime.unpin();
        }
        return PENDING;
      },
      closedError: () => closedError("receive on", WHAT, this.label),
      timedOutError: (ms) =>
        errnoError(ERRNO.ETIMEDOUT, "receive", {
          objectName: this.label,
          message: `Timed out after ${ms} ms: receive on ${WHAT} "${this.label}"`,
        }),
      spin: 0,
    }, options as WaitOptions);
  }

  /** The next message of any member if one is queued now, else `undefined`. */
  tryReceive(options: Omit<MachReceiveOptions, "timeout" | "signal"> = {}):
    | PortSetMessage
    | undefined {
    const { maxSize, large } = validateReceiveOptions(options);
    this.#assertOpen("receive on");
    const result = this.#attempt(maxSize, large);
    return result === PENDING ? undefined : result;
  }

  #attempt(maxSize: number, large: boolean): PortSetMessage | typeof PENDING {
    this.#prune();
    const count = this.#members.length;
    for (let i = 0; i < count; i++) {
      const index = (this.#next + i) % count;
      const port = this.#members[index];
      const message = port.attemptReceive(maxSize, large);
      if (message !== PENDING) {
        this.#next = (index + 1) % count;
        return { port, message };
      }
    }
    return PENDING;
  }

  #prune(): void {
    for (let i = this.#members.length - 1; i >= 0; i--) {
      if (this.#members[i].closed) this.#members.splice(i, 1);
    }
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.label);
  }

  /** Closes the set (idempotent); its members stay open. */
  close(): void {
    this.#lifetime.close();
    this.#members.length = 0;
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Datagrams: UDP sockets with size checks, and multicast groups on the loopback
 * interface, on Deno's own networking (which needs `--unstable-net` for UDP).
 *
 * @module
 */
import { numberArgument, timedOutError } from "../ffi/errno.ts";
import {
  closedConnection,
  describeAddress,
  toBytes,
  validateHostname,
  validatePort,
} from "./_net.ts";
import { describe, validateInteger, validateOptions } from "./_validate.ts";
import { Turns, validateWaitOptions, type WaitOptions, within } from "./_wait.ts";

/** Where a datagram goes or came from. */
export interface DatagramAddress {
  /** IPv4 address or host name. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** A datagram larger than the socket allows; nothing was sent. */
export class DatagramTooLargeError extends RangeError {
  /** Creates the error. */
  constructor(size: number, limit: number) {
    numberArgument(size, "size");
    numberArgument(limit, "limit");
    super(`Datagram of ${size} bytes is over the limit of ${limit} bytes; nothing was sent`);
    this.name = "DatagramTooLargeError";
  }
}

/** Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header). */
export const MAX_UDP_PAYLOAD = 65_507;

/** Options of {@link DatagramSocket.bind}. */
export interface DatagramBindOptions {
  /** Address to bind. Default: `"127.0.0.1"` (loopback only). */
  hostname?: string;
  /** Port. Default: 0 (any free port). */
  port?: number;
  /** Largest datagram sent or expected, at most 65507. Default: 65507. */
  maxDatagramSize?: number;
}

/** Options of {@link DatagramSocket.joinGroup} and {@link DatagramSocket.groupSender}. */
export interface MulticastOptions {
  /** IPv4 multicast group, 224.0.0.0 to 239.255.255.255 (e.g. `"239.255.0.1"`). */
  group: string;
  /** The group's UDP port. */
  port: number;
  /** Largest datagram, at most 65507. Default: 65507. */
  maxDatagramSize?: number;
}

/** A received datagram. */
export interface Datagram {
  /** Its bytes. */
  data: Uint8Array;
  /** Who sent it. */
  from: DatagramAddress;
}

function validateGroup(group: unknown): string {
  const parts = typeof group === "string" ? group.split(".").map(Number) : [];
  const valid = parts.length === 4 &&
    parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255) &&
    parts[0] >= 224 && parts[0] <= 239;
  if (!valid) {
    throw new TypeError(
      `Invalid multicast group ${describe(group)}: expected an IPv4 address from 224.0.0.0 to ` +
        `239.255.255.255`,
    );
  }
  return group as string;
}

/**
 * A UDP socket: one message per datagram, no connection, no delivery guarantee (on
 * loopback, datagrams are lost only when a receiver's buffer overflows). A datagram over
 * `maxDatagramSize` is a `DatagramTooLargeError` before anything is sent.
 *
 * Multicast stays on this machine: {@link DatagramSocket.joinGroup} receives a group's
 * datagrams on the loopback interface; {@link DatagramSocket.groupSender} sends to the
 * group with TTL 0, so nothing leaves the host.
 *
 * @example A datagram to oneself
 * ```ts
 * import { DatagramSocket } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using receiver = DatagramSocket.bind();
 * using sender = DatagramSocket.bind();
 * await sender.send("hello", receiver.address);
 * const { data, from } = await receiver.receive({ timeout: 1000 });
 * assert.equal(new TextDecoder().decode(data), "hello");
 * assert.equal(from.port, sender.address.port);
 * ```
 */
export class DatagramSocket implements Disposable {
  readonly #socket: Deno.DatagramConn;
  readonly #maxSize: number;
  readonly #membership: Deno.MulticastV4Membership | undefined;
  readonly #defaultTarget: DatagramAddress | undefined;
  #receiving: Promise<[Uint8Array, Deno.Addr]> | undefined;
  readonly #receiveTurns = new Turns();
  #closed = false;

  private constructor(
    socket: Deno.DatagramConn,
    maxSize: number,
    membership?: Deno.MulticastV4Membership,
    defaultTarget?: DatagramAddress,
  ) {
    this.#socket = socket;
    this.#maxSize = maxSize;
    this.#membership = membership;
    this.#defaultTarget = defaultTarget;
  }

  /** Binds a socket (loopback, any free port by default). */
  static bind(options?: DatagramBindOptions): DatagramSocket {
    const checked = validateOptions<DatagramBindOptions>(options, "datagram socket");
    const hostname = validateHostname(checked.hostname ?? "127.0.0.1");
    const port = validatePort(checked.port ?? 0, true);
    const maxSize = validateMaxDatagram(checked.maxDatagramSize);
    return new DatagramSocket(
      listenDatagram({ transport: "udp", hostname, port }),
      maxSize,
    );
  }

  /**
   * Joins a multicast group as a receiver, on the loopback interface. Several sockets
   * (in any processes) may join the same group and port; each gets every datagram.
   */
  static joinGroup(options: MulticastOptions): Promise<DatagramSocket> {
    // Bound to the group address: only that group's datagrams arrive here.
    return DatagramSocket.#inGroup(options, true);
  }

  /**
   * A socket that sends to a multicast group (`send(data)` with no address) on the
   * loopback interface, with TTL 0: the datagrams never leave this machine.
   */
  static groupSender(options: MulticastOptions): Promise<DatagramSocket> {
    return DatagramSocket.#inGroup(options, false);
  }

  static async #inGroup(options: MulticastOptions, receiver: boolean): Promise<DatagramSocket> {
    const checked = validateOptions<MulticastOptions>(options, "multicast");
    const group = validateGroup(checked.group);
    const port = validatePort(checked.port, false);
    const maxSize = validateMaxDatagram(checked.maxDatagramSize);
    const socket = receiver
      ? listenDatagram({
        transport: "udp",
        hostname: group,
        port,
        reuseAddress: true,
        loopback: true,
      })
      : listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0, loopback: true });
    try {
      const membership = await socket.joinMulticastV4(group, "127.0.0.1");
      if (receiver) return new DatagramSocket(socket, maxSize, membership);
      await membership.setTTL(0);
      await membership.setLoopback(true);
      return new DatagramSocket(socket, maxSize, membership, { hostname: group, port });
    } catch (error) {
      socket.close();
      throw error;
    }
  }

  /** The bound address. */
  get address(): DatagramAddress {
    const { hostname, port } = this.#socket.addr as Deno.NetAddr;
    return { hostname, port };
  }

  /** Largest datagram this socket sends. */
  get maxDatagramSize(): number {
    return this.#maxSize;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one datagram to `to` (for a group sender: to its group by default). Resolves
   * once the kernel took it, which is no proof of delivery.
   */
  async send(data: Uint8Array | string, to?: DatagramAddress): Promise<void> {
    if (this.#closed) throw closedConnection("send", "udp " + describeAddress(this.#socket.addr));
    const bytes = toBytes(data, "data");
    const target = to ?? this.#defaultTarget;
    if (target === undefined) throw new TypeError("A datagram needs an address to go to");
    const hostname = validateHostname(target.hostname);
    const port = validatePort(target.port, false);
    if (bytes.length > this.#maxSize) throw new DatagramTooLargeError(bytes.length, this.#maxSize);
    await this.#socket.send(bytes, { transport: "udp", hostname, port });
  }

  /**
   * Receives the next datagram. Concurrent calls get one datagram each, in turn; one
   * that times out loses nothing.
   */
  async receive(options?: WaitOptions): Promise<Datagram> {
    const name = "udp " + describeAddress(this.#socket.addr);
    if (this.#closed) throw closedConnection("receive", name);
    const wait = validateWaitOptions(options);
    const endTurn = await this.#receiveTurns.take(
      wait,
      (ms) => timedOutError("receive", "datagram socket", name, ms),
    );
    try {
      return await this.#receiveInTurn(name, wait);
    } finally {
      endTurn();
    }
  }

  async #receiveInTurn(name: string, wait: WaitOptions): Promise<Datagram> {
    if (this.#receiving === undefined) {
      this.#receiving = this.#socket.receive();
      this.#receiving.catch(() => {});
    }
    try {
      const [data, from] = await within(
        this.#receiving,
        wait,
        (ms) => timedOutError("receive", "datagram socket", name, ms),
      );
      this.#receiving = undefined;
      const { hostname, port } = from as Deno.NetAddr;
      return { data, from: { hostname, port } };
    } catch (error) {
      if (this.#closed) throw closedConnection("receive", name);
      throw error;
    }
  }

  /** Leaves the group (if any) and closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#membership?.leave().catch(() => {});
    try {
      this.#socket.close();
    } catch { /* already closed */ }
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// Deno's UDP API is unstable: without --unstable-net it does not exist.
function listenDatagram(options: Deno.UdpListenOptions & { transport: "udp" }): Deno.DatagramConn {
  if (typeof Deno.listenDatagram !== "function") {
    throw new TypeError("UDP sockets need Deno's --unstable-net flag (Deno.listenDatagram)");
  }
  return Deno.listenDatagram(options);
}

function validateMaxDatagram(value: unknown): number {
  return validateInteger(value ?? MAX_UDP_PAYLOAD, "maxDatagramSize", 0, MAX_UDP_PAYLOAD);
}

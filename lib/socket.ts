/**
 * Sockets: framed message streams over TCP and Unix domain sockets, UDP datagrams with
 * size checks, and multicast groups on the loopback interface. Built on Deno's own
 * networking (UDP needs `--unstable-net`).
 *
 * @module
 */
import { ERRNO } from "../ffi/constants.ts";
import { ClosedError, NotFoundError, numberArgument, timedOutError } from "../ffi/errno.ts";
import { describe, validateInteger, validateOptions } from "./_validate.ts";
import { Turns, validateWaitOptions, type WaitOptions, within } from "./_wait.ts";

/** Where a stream socket listens or connects: TCP host and port, or a Unix socket path. */
export type SocketAddress =
  | { transport: "tcp"; hostname?: string; port: number }
  | { transport: "unix"; path: string };

/** Where a datagram goes or came from. */
export interface DatagramAddress {
  /** IPv4 address or host name. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** Options of framed connections and servers. */
export interface FramingOptions {
  /** Largest message, in bytes, sent or accepted. Default: 16 MiB. */
  maxFrameSize?: number;
}

/** A frame larger than the connection's `maxFrameSize` (to send, or announced by the peer). */
export class FrameTooLargeError extends RangeError {
  /** The frame's size in bytes. */
  readonly size: number;
  /** The limit it exceeded. */
  readonly limit: number;

  /** Creates the error; `received` says whether the peer announced it. */
  constructor(size: number, limit: number, received: boolean) {
    numberArgument(size, "size");
    numberArgument(limit, "limit");
    super(
      received
        ? `The peer announced a frame of ${size} bytes, over the limit of ${limit} ` +
          `(a corrupt or hostile stream): the connection was closed`
        : `Message of ${size} bytes is over the frame limit of ${limit} bytes (maxFrameSize)`,
    );
    this.name = "FrameTooLargeError";
    this.size = size;
    this.limit = limit;
  }
}

/** The peer closed the connection in the middle of a frame. */
export class TruncatedFrameError extends Error {
  /** Creates the error. */
  constructor(missing: number) {
    numberArgument(missing, "missing");
    super(`The peer closed the connection ${missing} bytes before the end of a frame`);
    this.name = "TruncatedFrameError";
  }
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

const HEADER = 4;
const DEFAULT_MAX_FRAME = 16 * 2 ** 20;
const MAX_FRAME = 2 ** 31 - 1;
/** Largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header). */
export const MAX_UDP_PAYLOAD = 65_507;
const READ_CHUNK = 64 * 1024;
const COALESCE_BYTES = 64 * 1024;
const UNIX_PATH_MAX = 107; // sun_path is 108 bytes with the terminating NUL
const encoder = new TextEncoder();

function toBytes(message: unknown, what = "message"): Uint8Array {
  if (message instanceof Uint8Array) return message;
  if (typeof message === "string") return encoder.encode(message);
  throw new TypeError(
    `Invalid ${what}: expected a Uint8Array or a string, got ${describe(message)}`,
  );
}

// A DNS name (labels of 1 to 63 letters, digits, "-" and "_", 253 characters in all), an
// IPv4 address, or an IPv6 address: anything else Deno refuses with a URIError that does
// not say which argument was wrong.
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const IPV6_ADDRESS = /^\[?[0-9A-Fa-f:.]{2,45}\]?$/;

// A host name that does not resolve: Deno reports it as a plain Error; make it a
// NotFoundError naming the host.
function unresolvable(error: unknown, hostname: string | undefined): unknown {
  if (
    error instanceof Error && error.constructor === Error &&
    /failed to lookup address/i.test(error.message)
  ) {
    return new NotFoundError(ERRNO.ENOENT, "getaddrinfo", {
      objectName: hostname,
      message: `Cannot resolve hostname "${hostname}": ${error.message}`,
      cause: error,
    });
  }
  return error;
}

function validateHostname(hostname: unknown): string {
  if (
    typeof hostname !== "string" ||
    !(HOST_NAME.test(hostname) || (hostname.includes(":") && IPV6_ADDRESS.test(hostname)))
  ) {
    throw new TypeError(
      `Invalid hostname: expected a host name or IP address, got ${describe(hostname)}`,
    );
  }
  return hostname;
}

function validatePort(port: unknown, allowZero: boolean): number {
  return validateInteger(port, "port", allowZero ? 0 : 1, 65_535);
}

function validateMaxFrame(options: FramingOptions | undefined): number {
  const checked = validateOptions<FramingOptions>(options, "framing");
  return validateInteger(checked.maxFrameSize ?? DEFAULT_MAX_FRAME, "maxFrameSize", 0, MAX_FRAME);
}

/** Checks a stream address; `listening` allows port 0 and defaults the host to loopback. */
export function validateSocketAddress(
  address: unknown,
  listening: boolean,
  what = "socket address",
): SocketAddress {
  if (address === null || typeof address !== "object") {
    throw new TypeError(`Invalid ${what}: expected an object, got ${describe(address)}`);
  }
  const { transport } = address as { transport?: unknown };
  if (transport === "tcp") {
    const { hostname = "127.0.0.1", port } = address as { hostname?: unknown; port?: unknown };
    return { transport, hostname: validateHostname(hostname), port: validatePort(port, listening) };
  }
  if (transport === "unix") {
    const { path } = address as { path?: unknown };
    if (typeof path !== "string" || path.length === 0 || path.includes("\0")) {
      throw new TypeError(
        `Invalid Unix socket path: expected a non-empty string, got ${describe(path)}`,
      );
    }
    if (encoder.encode(path).length > UNIX_PATH_MAX) {
      throw new RangeError(
        `Invalid Unix socket path "${path.slice(0, 30)}...": over ${UNIX_PATH_MAX} bytes`,
      );
    }
    return { transport, path };
  }
  throw new TypeError(
    `Invalid ${what}: transport ${describe(transport)}, expected "tcp" or "unix"`,
  );
}

function describeAddress(address: Deno.Addr): string {
  return address.transport === "tcp" || address.transport === "udp"
    ? `${address.hostname}:${address.port}`
    : (address as Deno.UnixAddr).path;
}

function toSocketAddress(address: Deno.Addr): SocketAddress {
  return address.transport === "tcp"
    ? { transport: "tcp", hostname: address.hostname, port: address.port }
    : { transport: "unix", path: (address as Deno.UnixAddr).path };
}

function closedConnection(operation: string, name: string): ClosedError {
  return new ClosedError(ERRNO.EBADF, operation, {
    objectName: name,
    message: `Cannot ${operation}: connection ${name} is closed`,
  });
}

/**
 * A message stream over a TCP or Unix domain socket: each message is sent as a 4-byte
 * big-endian length and its bytes, and received whole, however the byte stream was
 * split on the way.
 *
 * - `send` queues messages in order (concurrent sends never interleave); a message over
 *   `maxFrameSize` is a `FrameTooLargeError` before anything is written.
 * - `receive` returns the next message, or `null` once the peer has closed its side
 *   cleanly. A receive that times out or is aborted loses nothing: the next one gets
 *   the message. A peer announcing a frame over the limit, or closing mid-frame, is
 *   an error and the connection is closed.
 * - `closeWrite()` ends this side gracefully (the peer's receive gets `null` after the
 *   last message); `close()` releases the socket.
 *
 * @example An echo over a Unix socket
 * ```ts
 * import { FramedConnection, FramedServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".sock" });
 * await Deno.remove(path);
 * using server = FramedServer.listen({ transport: "unix", path });
 * const serving = (async () => {
 *   using connection = await server.accept();
 *   for await (const message of connection) await connection.send(message);
 * })();
 * using client = await FramedConnection.connect({ transport: "unix", path });
 * await client.send("hello");
 * assert.equal(new TextDecoder().decode((await client.receive({ timeout: 1000 }))!), "hello");
 * await client.closeWrite();
 * assert.equal(await client.receive(), null);
 * await serving;
 * ```
 */
export class FramedConnection implements Disposable, AsyncIterable<Uint8Array> {
  readonly #conn: Deno.Conn;
  readonly #maxFrame: number;
  readonly #name: string;
  #buffer = new Uint8Array(READ_CHUNK);
  #start = 0;
  #end = 0;
  #reading: Promise<Uint8Array | null> | undefined;
  readonly #receiveTurns = new Turns();
  #writing: Promise<void> = Promise.resolve();
  #queue: { frame: Uint8Array; resolve: () => void; reject: (error: unknown) => void }[] = [];
  #flushing = false;
  #failure: unknown;
  #closed = false;

  /** Wraps an open connection (from `Deno.connect` / `accept`); it now owns it. */
  constructor(conn: Deno.Conn, options?: FramingOptions) {
    if (
      conn === null || typeof conn !== "object" || typeof conn.read !== "function" ||
      typeof conn.write !== "function" || typeof conn.remoteAddr !== "object"
    ) {
      throw new TypeError(`Invalid conn: expected a Deno.Conn, got ${describe(conn)}`);
    }
    this.#maxFrame = validateMaxFrame(options);
    this.#conn = conn;
    // Each frame is written whole; waiting to coalesce small writes (Nagle) would only
    // add latency to request-reply traffic.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    this.#name = describeAddress(
      conn.remoteAddr.transport === "unix" ? conn.localAddr : conn.remoteAddr,
    );
  }

  /**
   * Connects to a {@link FramedServer} (or any peer speaking the same framing).
   *
   * @example
   * ```ts
   * import { FramedConnection, FramedServer } from "@deno-ipc/ipc";
   *
   * using server = FramedServer.listen({ transport: "tcp", port: 0 });
   * using client = await FramedConnection.connect(server.address, { timeout: 1000 });
   * using accepted = await server.accept();
   * ```
   */
  static async connect(
    address: SocketAddress,
    options?: FramingOptions & WaitOptions,
  ): Promise<FramedConnection> {
    const checked = validateSocketAddress(address, false);
    const wait = validateWaitOptions({ timeout: options?.timeout, signal: options?.signal });
    validateMaxFrame(options);
    const label = checked.transport === "tcp"
      ? `${checked.hostname}:${checked.port}`
      : checked.path;
    const connecting: Promise<Deno.Conn> = checked.transport === "tcp"
      ? Deno.connect({ transport: "tcp", hostname: checked.hostname!, port: checked.port })
        .catch((error) => Promise.reject(unresolvable(error, checked.hostname)))
      : Deno.connect({ transport: "unix", path: checked.path });
    connecting.then((conn) => {
      if (abandoned) conn.close();
    }, () => {});
    let abandoned = false;
    try {
      const conn = await within(
        connecting,
        wait,
        (ms) => timedOutError("connect", "socket", label, ms),
      );
      return new FramedConnection(conn, { maxFrameSize: options?.maxFrameSize });
    } catch (error) {
      abandoned = true;
      throw error;
    }
  }

  /** The local address. */
  get localAddress(): SocketAddress {
    return toSocketAddress(this.#conn.localAddr);
  }

  /** The peer's address (for a Unix socket client, often unnamed). */
  get remoteAddress(): SocketAddress {
    return toSocketAddress(this.#conn.remoteAddr);
  }

  /** Whether `close()` was called (or the stream failed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends `message` (bytes, or a string as UTF-8) as one frame. */
  send(message: Uint8Array | string, options?: WaitOptions): Promise<void> {
    let frame: Uint8Array;
    let wait: WaitOptions;
    try {
      if (this.#closed) throw closedConnection("send", this.#name);
      const bytes = toBytes(message);
      wait = validateWaitOptions(options);
      if (bytes.length > this.#maxFrame) {
        throw new FrameTooLargeError(bytes.length, this.#maxFrame, false);
      }
      frame = new Uint8Array(HEADER + bytes.length);
      new DataView(frame.buffer).setUint32(0, bytes.length);
      frame.set(bytes, HEADER);
    } catch (error) {
      return Promise.reject(error);
    }
    const queued = Promise.withResolvers<void>();
    const entry = { frame, resolve: queued.resolve, reject: queued.reject };
    this.#queue.push(entry);
    if (!this.#flushing) this.#writing = this.#flush();
    if (wait.timeout === undefined && wait.signal === undefined) return queued.promise;
    return within(
      queued.promise,
      wait,
      (ms) => timedOutError("send", "connection", this.#name, ms),
    ).catch((error) => {
      // Given up: a frame still queued is dropped; one being written may be half sent,
      // and then the stream cannot go on.
      const index = this.#queue.indexOf(entry);
      if (index >= 0) this.#queue.splice(index, 1);
      else this.close();
      throw error;
    });
  }

  /** Receives the next message; `null` once the peer closed its side. */
  receive(options?: WaitOptions): Promise<Uint8Array | null> {
    // Fast path: nobody else is receiving and a whole frame is already buffered.
    if (!this.#receiveTurns.busy && this.#reading === undefined && !this.#closed) {
      try {
        validateWaitOptions(options);
      } catch (error) {
        return Promise.reject(error);
      }
      const frame = this.#takeBuffered();
      if (frame !== undefined) return Promise.resolve(frame);
    }
    return this.#receiveWaiting(options);
  }

  // A buffered whole frame, or undefined (an oversized header is left for #readFrame).
  #takeBuffered(): Uint8Array | undefined {
    if (this.#end - this.#start < HEADER) return undefined;
    const view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + this.#start);
    const length = view.getUint32(0);
    if (length > this.#maxFrame || this.#end - this.#start < HEADER + length) return undefined;
    const from = this.#start + HEADER;
    this.#start = from + length;
    return this.#buffer.slice(from, from + length);
  }

  async #receiveWaiting(options?: WaitOptions): Promise<Uint8Array | null> {
    if (this.#closed && this.#failure === undefined) throw closedConnection("receive", this.#name);
    const wait = validateWaitOptions(options);
    const onTimeout = (ms: number) => timedOutError("receive", "connection", this.#name, ms);
    const endTurn = await this.#receiveTurns.take(wait, onTimeout);
    try {
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#reading === undefined) {
        this.#reading = this.#readFrame();
        this.#reading.catch(() => {}); // awaited by this or a later receive
      }
      const message = await within(this.#reading, wait, onTimeout);
      this.#reading = undefined;
      return message;
    } finally {
      endTurn();
    }
  }

  /** Receives messages until the peer closes its side. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    while (true) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }

  /** Ends this side after the queued sends: the peer receives `null` after them. */
  async closeWrite(): Promise<void> {
    if (this.#closed) throw closedConnection("close the write side of", this.#name);
    await this.#writing;
    await this.#conn.closeWrite();
  }

  /** Closes the socket. Idempotent. Pending receives reject with `ClosedError`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed by the runtime */ }
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // Writes the queued frames, several per write(2) when they are small: a send that
  // found others queued costs no syscall of its own.
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        let take = 1;
        let bytes = this.#queue[0].frame.length;
        while (
          take < this.#queue.length && bytes + this.#queue[take].frame.length <= COALESCE_BYTES
        ) {
          bytes += this.#queue[take++].frame.length;
        }
        const batch = this.#queue.splice(0, take);
        let data = batch[0].frame;
        if (take > 1) {
          data = new Uint8Array(bytes);
          let at = 0;
          for (const { frame } of batch) {
            data.set(frame, at);
            at += frame.length;
          }
        }
        try {
          await this.#writeAll(data);
        } catch (error) {
          // Part of a frame may be on the wire: nothing more may follow it.
          this.close();
          for (const entry of [...batch, ...this.#queue.splice(0)]) entry.reject(error);
          return;
        }
        for (const entry of batch) entry.resolve();
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #writeAll(frame: Uint8Array): Promise<void> {
    if (this.#closed) throw closedConnection("send", this.#name);
    try {
      for (let written = 0; written < frame.length;) {
        written += await this.#conn.write(frame.subarray(written));
      }
    } catch (error) {
      throw this.#closed ? closedConnection("send", this.#name) : error;
    }
  }

  async #readFrame(): Promise<Uint8Array | null> {
    try {
      while (true) {
        const available = this.#end - this.#start;
        if (available >= HEADER) {
          const view = new DataView(this.#buffer.buffer, this.#buffer.byteOffset + this.#start);
          const length = view.getUint32(0);
          if (length > this.#maxFrame) throw new FrameTooLargeError(length, this.#maxFrame, true);
          if (available >= HEADER + length) {
            const from = this.#start + HEADER;
            this.#start = from + length;
            return this.#buffer.slice(from, from + length);
          }
          this.#reserve(HEADER + length);
        } else {
          this.#reserve(HEADER);
        }
        const read = await this.#conn.read(this.#buffer.subarray(this.#end));
        if (read === null) {
          if (this.#end === this.#start) return null;
          const expected = this.#end - this.#start >= HEADER
            ? HEADER + new DataView(this.#buffer.buffer, this.#start).getUint32(0)
            : HEADER;
          throw new TruncatedFrameError(expected - (this.#end - this.#start));
        }
        this.#end += read;
      }
    } catch (error) {
      if (this.#closed && this.#failure === undefined) {
        throw closedConnection("receive", this.#name);
      }
      this.#failure = error;
      this.close();
      throw error;
    }
  }

  // Makes room for a frame of `total` bytes from #start, plus a read's worth.
  #reserve(total: number): void {
    const used = this.#end - this.#start;
    const wanted = Math.max(total, used) + READ_CHUNK;
    if (this.#start > 0 && (this.#buffer.length - this.#end < READ_CHUNK || used === 0)) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end = used;
      this.#start = 0;
    }
    if (this.#buffer.length < wanted && this.#buffer.length - this.#end < READ_CHUNK) {
      const grown = new Uint8Array(Math.max(wanted, this.#buffer.length * 2));
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
      this.#end = used;
      this.#start = 0;
    }
  }
}

/**
 * A listening stream socket that hands out {@link FramedConnection}s. TCP servers bind
 * to the loopback address unless `hostname` says otherwise; a Unix socket's file is
 * created (it must not exist) and removed again by `close()`.
 *
 * @example Serving every client
 * ```ts
 * import { FramedConnection, FramedServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using server = FramedServer.listen({ transport: "tcp", port: 0 });
 * assert.equal(server.address.transport === "tcp" && server.address.hostname, "127.0.0.1");
 * const serving = server.serve(async (connection) => {
 *   for await (const message of connection) await connection.send(message);
 * });
 * using client = await FramedConnection.connect(server.address);
 * await client.send("ping");
 * assert.deepEqual(await client.receive(), new TextEncoder().encode("ping"));
 * client.close();
 * server.close();
 * await serving;
 * ```
 */
export class FramedServer implements Disposable, AsyncIterable<FramedConnection> {
  readonly #listener: Deno.Listener;
  readonly #options: FramingOptions;
  readonly #unixPath: string | undefined;
  #accepting: Promise<Deno.Conn> | undefined;
  readonly #acceptTurns = new Turns();
  #closed = false;

  private constructor(listener: Deno.Listener, options: FramingOptions, unixPath?: string) {
    this.#listener = listener;
    this.#options = options;
    this.#unixPath = unixPath;
  }

  /** Starts listening. Port 0 picks a free port (see `address`). */
  static listen(address: SocketAddress, options?: FramingOptions): FramedServer {
    const checked = validateSocketAddress(address, true);
    const maxFrameSize = validateMaxFrame(options);
    if (checked.transport === "tcp") {
      let listener: Deno.Listener;
      try {
        listener = Deno.listen({
          transport: "tcp",
          hostname: checked.hostname,
          port: checked.port,
        });
      } catch (error) {
        throw unresolvable(error, checked.hostname);
      }
      return new FramedServer(listener, { maxFrameSize });
    }
    const listener = Deno.listen({ transport: "unix", path: checked.path });
    return new FramedServer(listener, { maxFrameSize }, checked.path);
  }

  /** The address clients connect to (with the port actually bound). */
  get address(): SocketAddress {
    return toSocketAddress(this.#listener.addr);
  }

  /**
   * Waits for the next client. Concurrent calls are served in turn; one that times out
   * or is aborted loses no client (the next call gets it).
   */
  async accept(options?: WaitOptions): Promise<FramedConnection> {
    const name = describeAddress(this.#listener.addr);
    if (this.#closed) throw closedConnection("accept on", name);
    const wait = validateWaitOptions(options);
    const onTimeout = (ms: number) => timedOutError("accept", "server", name, ms);
    let endTurn: (() => void) | undefined;
    try {
      endTurn = await this.#acceptTurns.take(wait, onTimeout);
      if (this.#accepting === undefined) {
        this.#accepting = this.#listener.accept();
        this.#accepting.catch(() => {});
      }
      const conn = await within(this.#accepting, wait, onTimeout);
      this.#accepting = undefined;
      return new FramedConnection(conn, this.#options);
    } catch (error) {
      if (this.#closed) throw closedConnection("accept on", name);
      throw error;
    } finally {
      endTurn?.();
    }
  }

  /** Accepts clients until closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<FramedConnection, void, undefined> {
    while (!this.#closed) {
      try {
        yield await this.accept();
      } catch (error) {
        if (this.#closed) return;
        throw error;
      }
    }
  }

  /**
   * Runs `handler` for every client, concurrently, until the server is closed; a
   * handler's error (a misbehaving client) closes that connection and is passed to
   * `onError` (default: ignored), and the server keeps serving the others. Resolves
   * once the server is closed and every handler has finished.
   */
  async serve(
    handler: (connection: FramedConnection) => Promise<void> | void,
    onError: (error: unknown, connection: FramedConnection) => void = () => {},
  ): Promise<void> {
    const running = new Set<Promise<void>>();
    for await (const connection of this) {
      const task = (async () => {
        try {
          await handler(connection);
        } catch (error) {
          try {
            onError(error, connection);
          } catch { /* a failing error handler must not take the server down */ }
        } finally {
          connection.close();
        }
      })();
      running.add(task);
      task.finally(() => running.delete(task));
    }
    await Promise.all(running);
  }

  /** Stops listening (removing a Unix socket file). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    // A client accepted for a call that gave up is nobody's: close it.
    this.#accepting?.then((conn) => conn.close(), () => {});
    if (this.#unixPath !== undefined) {
      try {
        Deno.removeSync(this.#unixPath);
      } catch { /* already gone */ }
    }
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

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
    try {
      await this.#socket.send(bytes, { transport: "udp", hostname, port });
    } catch (error) {
      throw unresolvable(error, hostname);
    }
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
  try {
    return Deno.listenDatagram(options);
  } catch (error) {
    throw unresolvable(error, options.hostname);
  }
}

function validateMaxDatagram(value: unknown): number {
  return validateInteger(value ?? MAX_UDP_PAYLOAD, "maxDatagramSize", 0, MAX_UDP_PAYLOAD);
}

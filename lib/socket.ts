/**
 * Sockets: framed message streams over TCP and Unix domain sockets (datagrams are in
 * datagram.ts). TCP uses Deno's own networking; Unix sockets are libc sockets, so that
 * the kernel's word on the peer (`peerCredentials`) and the socket file's mode and
 * ownership are in reach.
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
import { type OwnershipOptions, validateOwnership } from "./_owner.ts";
import { type PeerCredentials, UnixListener, UnixStream } from "./_unix_socket.ts";
import { describe, validateInteger, validateMode, validateOptions } from "./_validate.ts";
import { Turns, validateWaitOptions, type WaitOptions, within } from "./_wait.ts";

export type { PeerCredentials } from "./_unix_socket.ts";

/** Where a stream socket listens or connects: TCP host and port, or a Unix socket path. */
export type SocketAddress =
  | { transport: "tcp"; hostname?: string; port: number }
  | { transport: "unix"; path: string };

/** Options of framed connections and servers. */
export interface FramingOptions {
  /**
   * Largest message, in bytes, sent or accepted. Default: 16 MiB. A receiver does not
   * reserve this much when a frame is announced: its buffer grows as the bytes arrive.
   */
  maxFrameSize?: number;
}

/**
 * Options of {@link FramedConnection.connect}. For a Unix socket, the socket file must
 * belong to this process's effective uid and give group and other users no write
 * permission (which is what connecting takes; read and execute bits grant nothing),
 * unless `allowOtherOwners` / `allowModes` say otherwise (`PermissionDeniedError`); a
 * symbolic link at the path is refused too.
 */
export interface FramedConnectOptions extends FramingOptions, WaitOptions, OwnershipOptions {}

/** Options of {@link FramedServer.listen}. */
export interface FramedServerOptions extends FramingOptions {
  /**
   * Most connections open at once: a client arriving while this many accepted
   * connections are open (not yet closed) is refused: it gets `refusalMessage` (if any)
   * as one frame and its connection is closed at once. Default: 1024.
   */
  maxConnections?: number;
  /** Sent as one frame to each refused client before its connection is closed. */
  refusalMessage?: Uint8Array | string;
  /**
   * Permission bits of a Unix socket's file, set before the socket accepts anyone
   * (connecting needs write permission). Default: `0o600`, only this user.
   */
  mode?: number;
}

// What the framing needs of a stream: Deno's own TCP connections, or our Unix sockets.
type Stream = Pick<Deno.Conn, "read" | "write" | "closeWrite" | "close"> & {
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;
  /** Our Unix sockets: resolves once closed and no write still waits on the pool. */
  readonly released?: Promise<void>;
};

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

const HEADER = 4;
const DEFAULT_MAX_FRAME = 16 * 2 ** 20;
const DEFAULT_MAX_CONNECTIONS = 1024;
const DEFAULT_SOCKET_MODE = 0o600;
const REFUSAL_TIMEOUT_MS = 1000;
const STARVED_RETRY_MS = 10;
// A receive buffer grown past this for a large frame is let go once the frame is out.
const KEEP_BUFFER = 4 * 64 * 1024;
const MAX_FRAME = 2 ** 31 - 1;
const READ_CHUNK = 64 * 1024;
const COALESCE_BYTES = 64 * 1024;
const UNIX_PATH_MAX = 107; // sun_path is 108 bytes with the terminating NUL
const encoder = new TextEncoder();

/** Checks `maxFrameSize` (default 16 MiB). */
export function validateMaxFrame(options: FramingOptions | undefined): number {
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

// Called when a connection closes (its server counts the open ones).
const closeListeners = new WeakMap<FramedConnection, () => void>();

function toSocketAddress(address: Deno.Addr): SocketAddress {
  return address.transport === "tcp"
    ? { transport: "tcp", hostname: address.hostname, port: address.port }
    : { transport: "unix", path: (address as Deno.UnixAddr).path };
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
  readonly #conn: Stream;
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
  #writeFailure: unknown;
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
    this.#conn = conn as Stream;
    // Each frame is written whole; waiting to coalesce small writes (Nagle) would only
    // add latency to request-reply traffic.
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    // A Unix socket's name is its path, whichever end has it.
    this.#name = conn.remoteAddr.transport === "unix"
      ? (conn.localAddr as Deno.UnixAddr).path || (conn.remoteAddr as Deno.UnixAddr).path
      : describeAddress(conn.remoteAddr);
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
    options?: FramedConnectOptions,
  ): Promise<FramedConnection> {
    const checked = validateSocketAddress(address, false);
    const wait = validateWaitOptions({ timeout: options?.timeout, signal: options?.signal });
    validateMaxFrame(options);
    const ownership = validateOwnership(validateOptions<FramedConnectOptions>(options, "connect"));
    const label = checked.transport === "tcp"
      ? `${checked.hostname}:${checked.port}`
      : checked.path;
    const connecting: Promise<Stream> = checked.transport === "tcp"
      ? Deno.connect({ transport: "tcp", hostname: checked.hostname!, port: checked.port })
      : UnixStream.connect(checked.path, ownership, wait);
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
      return new FramedConnection(conn as Deno.Conn, { maxFrameSize: options?.maxFrameSize });
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

  /**
   * The peer's process id, user id and group id as the kernel recorded them when the
   * connection was made (SO_PEERCRED): for Unix sockets only, `undefined` over TCP. A
   * server learns who connected; a client learns who listens. No peer can forge them.
   *
   * @example Who connected
   * ```ts
   * import { FramedConnection, FramedServer } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * const directory = Deno.makeTempDirSync();
   * try {
   *   const path = `${directory}/server.sock`;
   *   using server = FramedServer.listen({ transport: "unix", path });
   *   using client = await FramedConnection.connect({ transport: "unix", path });
   *   using accepted = await server.accept({ timeout: 1000 });
   *   assert.equal(accepted.peerCredentials?.pid, Deno.pid);
   *   assert.equal(client.peerCredentials?.uid, Deno.uid());
   * } finally {
   *   Deno.removeSync(directory, { recursive: true });
   * }
   * ```
   */
  get peerCredentials(): PeerCredentials | undefined {
    return this.#conn instanceof UnixStream ? this.#conn.peerCredentials : undefined;
  }

  /** Sends `message` (bytes, or a string as UTF-8) as one frame. */
  send(message: Uint8Array | string, options?: WaitOptions): Promise<void> {
    let frame: Uint8Array;
    let wait: WaitOptions;
    try {
      if (this.#closed) throw closedConnection("send", this.#name);
      if (this.#writeFailure !== undefined) throw this.#writeFailure;
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
    return this.#take(length);
  }

  // The buffered frame of `length` bytes at #start; a buffer grown for a large frame is
  // let go once nothing much is left in it.
  #take(length: number): Uint8Array {
    const from = this.#start + HEADER;
    this.#start = from + length;
    const frame = this.#buffer.slice(from, from + length);
    const left = this.#end - this.#start;
    if (this.#buffer.length > KEEP_BUFFER && left <= READ_CHUNK) {
      const smaller = new Uint8Array(READ_CHUNK * 2);
      smaller.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = smaller;
      this.#start = 0;
      this.#end = left;
    }
    return frame;
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
    const listener = closeListeners.get(this);
    closeListeners.delete(this);
    listener?.();
  }

  /**
   * Resolves once closed and no wait of this connection still runs on the thread pool
   * (a Unix socket's send waiting for room): what an op sanitizer, or a process about to
   * exit, waits for. Over TCP (whose waits are Deno's own) it resolves at once.
   */
  get released(): Promise<void> {
    return this.#conn.released ?? Promise.resolve();
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
          // Part of a frame may be on the wire: nothing more may follow it. Receiving
          // goes on: a peer that went away may have said why before it did (a server's
          // refusal), and its last frames are still to be read.
          this.#writeFailure ??= error;
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
          if (available >= HEADER + length) return this.#take(length);
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

  // Makes room to read more of a frame of `total` bytes from #start. The buffer grows
  // with what has arrived (doubling, never past the frame plus one read), not with what
  // the header announced: a peer that announces 2 GiB and sends nothing costs one read's
  // worth of memory.
  #reserve(total: number): void {
    const used = this.#end - this.#start;
    const wanted = total + READ_CHUNK;
    if (this.#start > 0 && (this.#buffer.length - this.#end < READ_CHUNK || used === 0)) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end = used;
      this.#start = 0;
    }
    if (this.#buffer.length < wanted && this.#buffer.length - this.#end < READ_CHUNK) {
      const size = Math.min(wanted, Math.max(this.#buffer.length * 2, used + READ_CHUNK));
      const grown = new Uint8Array(size);
      grown.set(this.#buffer.subarray(this.#start, this.#end));
      this.#buffer = grown;
      this.#end = used;
      this.#start = 0;
    }
  }
}

/**
 * A listening stream socket that hands out {@link FramedConnection}s. TCP servers bind
 * to the loopback address unless `hostname` says otherwise.
 *
 * A Unix socket's file is created (nothing may exist at the path: `AlreadyExistsError`)
 * with mode `0o600` (option `mode`), set before the socket accepts anyone, whatever the
 * umask; `close()` removes it only if the path still names that same file (device and
 * inode), never a file or link someone put there since. Each accepted connection's
 * `peerCredentials` says which process and user connected.
 *
 * At most `maxConnections` (default 1024) accepted connections are open at once; a
 * client beyond that is refused (it receives `refusalMessage`, if set, then the end of
 * the stream) and the server goes on serving the others.
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
  readonly #listener: Listener;
  readonly #options: FramingOptions;
  readonly #maxConnections: number;
  readonly #refusal: Uint8Array | undefined;
  readonly #open = new Set<FramedConnection>();
  #accepting: Promise<Stream> | undefined;
  readonly #acceptTurns = new Turns();
  #closed = false;

  private constructor(
    listener: Listener,
    options: FramingOptions,
    maxConnections: number,
    refusal: Uint8Array | undefined,
  ) {
    this.#listener = listener;
    this.#options = options;
    this.#maxConnections = maxConnections;
    this.#refusal = refusal;
  }

  /** Starts listening. Port 0 picks a free port (see `address`). */
  static listen(address: SocketAddress, options?: FramedServerOptions): FramedServer {
    const checked = validateSocketAddress(address, true);
    const opts = validateOptions<FramedServerOptions>(options, "server");
    const maxFrameSize = validateMaxFrame(opts);
    const maxConnections = validateInteger(
      opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      "maxConnections",
      1,
    );
    const refusal = opts.refusalMessage === undefined ? undefined : toBytes(opts.refusalMessage);
    if (refusal !== undefined && refusal.length > maxFrameSize) {
      throw new FrameTooLargeError(refusal.length, maxFrameSize, false);
    }
    const mode = validateMode(opts.mode ?? DEFAULT_SOCKET_MODE, "Unix socket");
    const listener: Listener = checked.transport === "tcp"
      ? Deno.listen({ transport: "tcp", hostname: checked.hostname, port: checked.port })
      : UnixListener.listen(checked.path, mode);
    return new FramedServer(listener, { maxFrameSize }, maxConnections, refusal);
  }

  /** How many accepted connections are open (not yet closed). */
  get openConnections(): number {
    return this.#open.size;
  }

  /** The address clients connect to (with the port actually bound). */
  get address(): SocketAddress {
    return toSocketAddress(this.#listener.addr);
  }

  /**
   * Waits for the next client. Concurrent calls are served in turn; one that times out
   * or is aborted loses no client (the next call gets it). Clients beyond
   * `maxConnections` are refused here and never returned.
   */
  async accept(options?: WaitOptions): Promise<FramedConnection> {
    const name = describeAddress(this.#listener.addr);
    if (this.#closed) throw closedConnection("accept on", name);
    const wait = validateWaitOptions(options);
    const onTimeout = (ms: number) => timedOutError("accept", "server", name, ms);
    let endTurn: (() => void) | undefined;
    try {
      endTurn = await this.#acceptTurns.take(wait, onTimeout);
      const deadline = wait.timeout === undefined ? undefined : performance.now() + wait.timeout;
      while (true) {
        if (this.#accepting === undefined) {
          this.#accepting = this.#listener.accept();
          this.#accepting.catch(() => {});
        }
        const remaining = deadline === undefined
          ? undefined
          : Math.max(0, deadline - performance.now());
        let conn: Stream;
        try {
          conn = await within(
            this.#accepting,
            { timeout: remaining, signal: wait.signal },
            () => onTimeout(wait.timeout!),
          );
        } catch (error) {
          if (this.#closed || !outOfDescriptors(error)) throw error;
          // A flood of clients took every descriptor: they wait in the backlog while
          // connections close. Try again shortly rather than stop serving.
          this.#accepting = undefined;
          await new Promise((resolve) => setTimeout(resolve, STARVED_RETRY_MS));
          continue;
        }
        this.#accepting = undefined;
        const connection = new FramedConnection(conn as Deno.Conn, this.#options);
        if (this.#open.size >= this.#maxConnections) {
          this.#refuse(connection);
          continue;
        }
        this.#open.add(connection);
        closeListeners.set(connection, () => this.#open.delete(connection));
        return connection;
      }
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
   * once the server is closed, every handler has finished and its connection is
   * released.
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
          // A reply still waiting for room on the thread pool (a client that stopped
          // reading) returns at the close's shutdown: serve resolves after it.
          await connection.released;
        }
      })();
      running.add(task);
      task.finally(() => running.delete(task));
    }
    await Promise.all(running);
    await this.released; // no accept left waiting off the main thread
  }

  // Over the limit: the client gets the refusal (if any) and the end of the stream. The
  // write goes into an empty socket buffer, so it does not wait; the bound is for a
  // refusal larger than that buffer.
  #refuse(connection: FramedConnection): void {
    if (this.#refusal === undefined) {
      connection.close();
      return;
    }
    connection.send(this.#refusal, { timeout: REFUSAL_TIMEOUT_MS })
      .catch(() => {})
      .finally(() => connection.close());
  }

  /**
   * Stops listening (removing a Unix socket file if it is still this server's).
   * Connections already accepted stay open. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    // A client accepted for a call that gave up is nobody's: close it.
    this.#accepting?.then((conn) => conn.close(), () => {});
  }

  /**
   * Resolves once the server is closed and no accept still waits off the main thread
   * (for an op sanitizer, or before the process must hold no more pool calls).
   */
  get released(): Promise<void> {
    return this.#listener.released ?? Promise.resolve();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// Deno reports accept(2)'s EMFILE / ENFILE as an Error naming the OS error.
function outOfDescriptors(error: unknown): boolean {
  return error instanceof Error && /\(os error 2[34]\)/.test(error.message);
}

// Deno's TCP listener, or our Unix one.
type Listener = {
  readonly addr: Deno.Addr;
  accept(): Promise<Stream>;
  close(): void;
  /** Our Unix listener: resolves once no accept still waits on its descriptor. */
  readonly released?: Promise<void>;
};

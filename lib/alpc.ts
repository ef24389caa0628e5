/**
 * ALPC-style local procedure calls, after Windows' Advanced Local Procedure Call as the
 * course text describes it, built from Linux pieces:
 *
 * - The server's named **connection port** is a Unix socket file (mode 0600 by default,
 *   created exclusively: a second server of the same name fails with
 *   `AlreadyExistsError`). A client connects with an optional payload and the size of
 *   the section it wants for large messages; the server sees the request with the
 *   client's kernel-verified pid, uid and gid (SO_PEERCRED) and accepts it (with a reply
 *   payload and a per-client context value) or refuses it (the client gets
 *   {@link AlpcConnectionRefusedError} with the server's reason).
 * - An accepted client gets the pair of private **communication ports**: a connected
 *   socket no third process can name, open or connect to.
 * - Each message takes one of **three paths** by size: up to the inline limit (256 bytes
 *   by default, up to 65,487) it is copied through the socket; up to the section's size
 *   it is written into the sender's **section** (a sealed memfd passed in SCM_RIGHTS at
 *   connect time, so nobody else can open it) and the message carries only offset and
 *   length; anything larger is read by the receiver **in place** from the sender's
 *   memory with process_vm_readv while the sender keeps the buffer pinned.
 * - `sendWaitReceive` sends a request and waits for the reply with its id; datagrams
 *   expect none; callbacks tagged with a waiting request run in the waiting call and nest
 *   up to {@link MAX_CALLBACK_DEPTH}. A close or a death ends every request in flight
 *   with {@link PortClosedError} and unmaps the sections.
 *
 * Where real ALPC differs: messages there are at most 65,535 bytes including a 40-byte
 * header (16-bit lengths; the textbook's 256 bytes is old LPC's limit), and messages carry
 * attributes (security context, views of sections, handles, a per-message context)
 * where here the section view is a field of the header and handles travel only at
 * connect time. Windows maps one section per port and the sender allocates views itself;
 * here a first-fit allocator hands out section space and the receiver frees it.
 *
 * @module
 */
import { forgetEndpoint } from "./_endpoints.ts";
import { C, ERRNO } from "../ffi/constants.ts";
import { AlreadyExistsError, ErrnoError, errnoError, timedOutError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import {
  type AlpcHandler,
  AlpcMessage,
  type AlpcSendOptions,
  Channel,
  type CloseReason,
  PortClosedError,
  toPayload,
} from "./_alpc_channel.ts";
import { OwnSection, PeerSection } from "./_alpc_section.ts";
import {
  encodeHandshake,
  HEADER_SIZE,
  MAX_CONNECTION_PAYLOAD,
  receiveHandshake,
  sendHandshake,
  STATUS,
} from "./_alpc_wire.ts";
import { Lifetime } from "./_lifetime.ts";
import { type OwnershipOptions, validateOwnership } from "./_owner.ts";
import { FramedConnection } from "./socket.ts";
import {
  isListening,
  type PeerCredentials,
  peerCredentialsOf,
  UnixListener,
  UnixStream,
} from "./_unix_socket.ts";
import { validateInteger, validateMode, validateOptions } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions, within } from "./_wait.ts";

export {
  type AlpcHandler,
  AlpcMessage,
  AlpcRemoteError,
  type AlpcReplyData,
  type AlpcSendOptions,
  type CloseReason,
  MAX_BACKLOG,
  MAX_CALLBACK_DEPTH,
  PortClosedError,
} from "./_alpc_channel.ts";
export { SectionFullError } from "./_alpc_section.ts";
export type { AlpcPath } from "./_alpc_wire.ts";
export { MAX_CONNECTION_PAYLOAD, MAX_INLINE_LIMIT } from "./_alpc_wire.ts";
export { AlpcConnectionRefusedError, type AlpcLimits, validatePortName } from "./_alpc_names.ts";
import {
  AlpcConnectionRefusedError,
  type AlpcLimits,
  checkLimits,
  DEFAULT_MAX_PENDING,
  HANDSHAKE_TIMEOUT_MS,
  MAX_SECTION,
  portPath,
  validatePortName,
} from "./_alpc_names.ts";

/** Options of {@link AlpcServer.create}. */
export interface AlpcServerOptions extends AlpcLimits {
  /** Permission bits of the connection port (connecting needs write): default 0o600. */
  mode?: number;
  /** Size of the server's section for large replies, per client that has one: default 0 (none). */
  replySectionSize?: number;
  /** Connection requests waiting for accept/reject at most; more are refused. Default 64. */
  maxPendingConnections?: number;
  /** Called with each message received (for traces). */
  onMessage?: (message: AlpcMessage, connection: AlpcConnection) => void;
}

/** Options of {@link AlpcConnectionRequest.accept}. */
export interface AlpcAcceptOptions {
  /** Bytes the client receives as `serverPayload`. */
  payload?: Uint8Array | string;
  /** The per-client context value every event of this client carries. */
  context?: unknown;
  /** Handles callbacks the client sends while a callback of the server waits. */
  onCallback?: AlpcHandler;
}

/** What the server receives: in one loop for all its clients. */
export type AlpcServerEvent =
  | { type: "connect"; request: AlpcConnectionRequest }
  | { type: "request" | "datagram"; connection: AlpcConnection; message: AlpcMessage }
  | { type: "port-closed" | "client-died"; connection: AlpcConnection; error?: unknown };

/** A client asking to connect: accept or reject it (once). */
export class AlpcConnectionRequest {
  /** The client's pid, uid and gid as the kernel recorded them (no client can forge them). */
  readonly credentials: PeerCredentials;
  /** The client's connection payload. */
  readonly payload: Uint8Array;
  /** Size of the client's section (0: it sends large messages in place only). */
  readonly sectionSize: number;
  readonly #server: AlpcServer;
  readonly #fd: number;
  readonly #inlineLimit: number;
  readonly #sectionFd: number | undefined;
  #answered = false;

  /** @internal */
  constructor(
    server: AlpcServer,
    fd: number,
    credentials: PeerCredentials,
    payload: Uint8Array,
    sectionSize: number,
    inlineLimit: number,
    sectionFd: number | undefined,
  ) {
    if (!(server instanceof AlpcServer)) {
      throw new TypeError("Invalid server: connection requests are made by AlpcServer only");
    }
    this.#server = server;
    this.#fd = fd;
    this.credentials = credentials;
    this.payload = payload;
    this.sectionSize = sectionSize;
    this.#inlineLimit = inlineLimit;
    this.#sectionFd = sectionFd;
  }

  #answer(operation: string): void {
    // The server's close refused every request it left unanswered.
    if (this.#server._closed) throw new PortClosedError("closed", this.#server.name, operation);
    if (this.#answered) throw new TypeError("This connection request was already answered");
    this.#answered = true;
  }

  /**
   * Accepts: the client's connect resolves; returns the server's end of the channel.
   * Rejects with `PortClosedError` ("peer-died") when the client left meanwhile, and with
   * `CorruptedError` when its section is not a sealed memfd of the size it announced:
   * a server loop should catch both and go on.
   */
  async accept(options: AlpcAcceptOptions = {}): Promise<AlpcConnection> {
    validateOptions<AlpcAcceptOptions>(options, "accept");
    const payload = toPayload(options.payload ?? new Uint8Array(), "payload");
    if (payload.length > MAX_CONNECTION_PAYLOAD) {
      throw new RangeError(
        `Invalid payload: ${payload.length} bytes, over ${MAX_CONNECTION_PAYLOAD}`,
      );
    }
    this.#answer("accept a client on");
    return await this.#server._accept(
      this.#fd,
      this,
      payload,
      this.#inlineLimit,
      this.#sectionFd,
      options,
    );
  }

  /** Refuses: the client gets `AlpcConnectionRefusedError` with `reason`. */
  reject(reason = "refused"): Promise<void> {
    try {
      const bytes = toPayload(reason, "reason").subarray(0, MAX_CONNECTION_PAYLOAD);
      this.#answer("reject a client on");
      return this.#refuse(bytes);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** @internal The server's own refusal (as it closes, or when too many wait). */
  _refuse(reason: string): Promise<void> {
    if (this.#answered) return Promise.resolve();
    this.#answered = true;
    return this.#refuse(new TextEncoder().encode(reason));
  }

  async #refuse(bytes: Uint8Array): Promise<void> {
    this.#server._pendingDone(this);
    try {
      await sendHandshake(
        this.#fd,
        encodeHandshake(STATUS.refused, 0, 0, bytes),
        [],
        this.#server.name,
        {
          timeout: HANDSHAKE_TIMEOUT_MS,
        },
      );
    } catch {
      /* the client left */
    } finally {
      if (this.#sectionFd !== undefined) libc().symbols.close(this.#sectionFd);
      libc().symbols.close(this.#fd);
    }
  }
}

/** The server's end of one client's channel (its communication port). */
export class AlpcConnection implements Disposable {
  /** The per-client context given at accept. */
  readonly context: unknown;
  /** The client's pid, uid and gid (SO_PEERCRED). */
  readonly credentials: PeerCredentials;
  /** @internal */
  _channel!: Channel;

  /** @internal */
  constructor(context: unknown, credentials: PeerCredentials) {
    this.context = context;
    this.credentials = credentials;
  }

  /** Sends the client a datagram. */
  send(data: Uint8Array | string, options?: AlpcSendOptions): Promise<void> {
    try {
      return this._channel.datagram(toPayload(data), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Why the channel ended, or undefined while open. */
  get closedReason(): CloseReason | undefined {
    return this._channel.closedReason;
  }

  /** Disconnects this client (its requests in flight fail with `PortClosedError`). */
  close(): void {
    this._channel.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * An ALPC server: a named connection port whose events (connection requests, requests
 * and datagrams of every client, closes and deaths) arrive in one loop.
 *
 * @example A server and a client in one process
 * ```ts
 * import { AlpcClient, AlpcServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * await using server = AlpcServer.create(`doc-${crypto.randomUUID().slice(0, 8)}`);
 * const serving = (async () => {
 *   for await (const event of server) {
 *     if (event.type === "connect") await event.request.accept({ context: "first" });
 *     else if (event.type === "request") await event.message.reply(event.message.text() + "!");
 *     else if (event.type === "port-closed") return;
 *   }
 * })();
 * using client = await AlpcClient.connect(server.name, { timeout: 5000 });
 * using reply = await client.sendWaitReceive("hi", { timeout: 5000 });
 * assert.equal(reply.text(), "hi!");
 * assert.equal(reply.path, "inline");
 * client.close();
 * await serving;
 * ```
 */
export class AlpcServer implements Disposable, AsyncDisposable, AsyncIterable<AlpcServerEvent> {
  /** The port's name. */
  readonly name: string;
  /** Path of the socket file. */
  readonly path: string;
  readonly #listener: UnixListener;
  readonly #limits: { inlineLimit: number; maxMessageSize: number };
  readonly #replySectionSize: number;
  readonly #maxPending: number;
  readonly #onMessage: AlpcServerOptions["onMessage"];
  readonly #events: AlpcServerEvent[] = [];
  #wake: (() => void) | undefined;
  readonly #connections = new Set<AlpcConnection>();
  // Connection requests received and not yet answered: refused when the server closes.
  readonly #unanswered = new Set<AlpcConnectionRequest>();
  #closed = false;
  // Handshakes wait on the thread pool: closed with the server, released once none does.
  readonly #handshakes = new Lifetime(() => {});
  // Channels that ended while a send of theirs may still wait on the thread pool.
  readonly #draining = new Set<Promise<void>>();
  readonly #acceptLoopDone: Promise<void>;

  private constructor(
    name: string,
    path: string,
    listener: UnixListener,
    options: AlpcServerOptions,
  ) {
    this.name = name;
    this.path = path;
    this.#listener = listener;
    this.#limits = checkLimits(options);
    this.#replySectionSize = options.replySectionSize ?? 0;
    this.#maxPending = options.maxPendingConnections ?? DEFAULT_MAX_PENDING;
    this.#onMessage = options.onMessage;
    this.#acceptLoopDone = this.#acceptLoop();
  }

  /** Creates the connection port `name` (exclusively). */
  static create(name: string, options: AlpcServerOptions = {}): AlpcServer {
    validatePortName(name);
    const checked = validateOptions<AlpcServerOptions>(options, "server");
    const path = portPath(name, checked.directory);
    const mode = validateMode(checked.mode ?? 0o600, "ALPC port");
    checkLimits(checked);
    validateInteger(checked.replySectionSize ?? 0, "replySectionSize", 0, MAX_SECTION);
    if (checked.onMessage !== undefined && typeof checked.onMessage !== "function") {
      throw new TypeError("Invalid onMessage: expected a function");
    }
    validateInteger(
      checked.maxPendingConnections ?? DEFAULT_MAX_PENDING,
      "maxPendingConnections",
      1,
      65_536,
    );
    let listener: UnixListener;
    try {
      listener = UnixListener.listen(path, mode);
    } catch (error) {
      if (error instanceof AlreadyExistsError) {
        throw new AlreadyExistsError(ERRNO.EEXIST, "bind", {
          objectName: name,
          message: `Cannot create ALPC port "${name}": a port of that name exists (${path}); ` +
            `if its server died, AlpcServer.remove("${name}") removes it`,
        });
      }
      throw error;
    }
    return new AlpcServer(name, path, listener, checked);
  }

  /**
   * Removes a connection port left by a server that died; false if there was none, or
   * if a server still listens on it (it is that server's to remove, by closing).
   */
  static remove(name: string, options: { directory?: string } = {}): boolean {
    const { directory } = validateOptions<{ directory?: string }>(options, "remove");
    const path = portPath(validatePortName(name), directory);
    try {
      const status = Deno.lstatSync(path);
      if (!status.isSocket || isListening(path)) return false;
      Deno.removeSync(path);
      // Its record in the endpoint registry (lib/_endpoints.ts) goes too: the server that
      // made it died without removing it.
      forgetEndpoint(path, status.ino === null ? undefined : BigInt(status.ino));
      return true;
    } catch {
      return false;
    }
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#closed) {
      let fd: number;
      try {
        fd = await this.#listener.acceptDescriptor();
      } catch {
        return; // closed
      }
      this.#handshake(fd);
    }
  }

  async #handshake(fd: number): Promise<void> {
    const { symbols } = libc();
    let request: AlpcConnectionRequest | undefined;
    try {
      const credentials = peerCredentialsOf(fd, this.name);
      const hello = await receiveHandshake(
        fd,
        this.name,
        { timeout: HANDSHAKE_TIMEOUT_MS },
        this.#handshakes,
      );
      if (this.#closed) {
        if (hello.descriptor !== undefined) symbols.close(hello.descriptor);
        throw new Error("closed");
      }
      if (
        hello.status !== 0 || hello.sectionSize > MAX_SECTION ||
        (hello.sectionSize > 0) !== (hello.descriptor !== undefined)
      ) {
        if (hello.descriptor !== undefined) symbols.close(hello.descriptor);
        throw new Error("malformed connection request");
      }
      request = new AlpcConnectionRequest(
        this,
        fd,
        credentials,
        hello.payload,
        hello.sectionSize,
        Math.min(hello.inlineLimit, this.#limits.inlineLimit),
        hello.descriptor,
      );
      if (this.#unanswered.size >= this.#maxPending) {
        await request._refuse("too many connection requests are waiting");
        return;
      }
      this.#unanswered.add(request);
      this.#push({ type: "connect", request });
    } catch {
      if (request === undefined) closeWakingPolls(fd);
    }
  }

  /** @internal Whether close() was called. */
  get _closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  _pendingDone(request: AlpcConnectionRequest): void {
    this.#unanswered.delete(request);
  }

  /** @internal */
  async _accept(
    fd: number,
    request: AlpcConnectionRequest,
    payload: Uint8Array,
    inlineLimit: number,
    sectionFd: number | undefined,
    options: AlpcAcceptOptions,
  ): Promise<AlpcConnection> {
    this._pendingDone(request);
    const { symbols } = libc();
    let peerSection: PeerSection | undefined;
    let ownSection: OwnSection | undefined;
    try {
      if (sectionFd !== undefined) {
        peerSection = PeerSection.map(sectionFd, request.sectionSize, this.name);
      }
      sectionFd = undefined;
      if (this.#replySectionSize > 0) {
        ownSection = OwnSection.create(this.#replySectionSize, this.name);
      }
      await sendHandshake(
        fd,
        encodeHandshake(STATUS.accepted, ownSection?.size ?? 0, inlineLimit, payload) as Uint8Array<
          ArrayBuffer
        >,
        ownSection ? [ownSection.descriptor] : [],
        this.name,
        { timeout: HANDSHAKE_TIMEOUT_MS },
      );
      ownSection?.closeDescriptor();
    } catch (error) {
      if (sectionFd !== undefined) symbols.close(sectionFd);
      peerSection?.close();
      ownSection?.close();
      symbols.close(fd);
      const left = error instanceof ErrnoError &&
        (error.errno === ERRNO.EPIPE || error.errno === ERRNO.ECONNRESET);
      // The client left before the answer: as for any channel whose peer is gone.
      if (left) throw new PortClosedError("peer-died", this.name, "accept a client on", error);
      throw error;
    }
    const connection = new AlpcConnection(options.context, request.credentials);
    const stream = new UnixStream(fd, this.path, true);
    const framed = new FramedConnection(stream as unknown as Deno.Conn, {
      maxFrameSize: HEADER_SIZE + inlineLimit + 4096,
    });
    connection._channel = new Channel({
      connection: framed,
      peer: request.credentials,
      name: this.name,
      inlineLimit,
      maxMessageSize: this.#limits.maxMessageSize,
      ownSection,
      peerSection,
      onCallback: options.onCallback,
      deliver: (message) => {
        this.#push({
          type: message.kind === "request" ? "request" : "datagram",
          connection,
          message,
        });
      },
      ended: (reason, error) => {
        this.#connections.delete(connection);
        const released = framed.released;
        this.#draining.add(released);
        released.then(() => this.#draining.delete(released));
        if (reason !== "closed" && !this.#closed) {
          this.#push({
            type: reason === "port-closed" ? "port-closed" : "client-died",
            connection,
            error,
          });
        }
      },
      trace: this.#onMessage ? (message) => this.#onMessage!(message, connection) : undefined,
    });
    if (this.#closed) {
      // The server closed while this accept was answering: nothing may outlive it.
      connection.close();
      throw new PortClosedError("closed", this.name, "accept a client on");
    }
    this.#connections.add(connection);
    return connection;
  }

  #push(event: AlpcServerEvent): void {
    this.#events.push(event);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Clients connected now. */
  get connections(): readonly AlpcConnection[] {
    return [...this.#connections];
  }

  /** The next event (timeout and signal as everywhere); `null` once closed. */
  async receive(options?: WaitOptions): Promise<AlpcServerEvent | null> {
    const wait = validateWaitOptions(options);
    while (true) {
      const event = this.#events.shift();
      if (event) {
        if (event.type === "request" || event.type === "datagram") {
          event.connection._channel.taken(event.message);
        }
        return event;
      }
      if (this.#closed) return null;
      const woken = new Promise<void>((resolve) => this.#wake = resolve);
      await within(woken, wait, (ms) => timedOutError("receive on", "ALPC port", this.name, ms));
    }
  }

  /** Events until the server closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<AlpcServerEvent, void, undefined> {
    while (true) {
      const event = await this.receive();
      if (event === null) return;
      yield event;
    }
  }

  /** Closes the port and every client's channel, and removes the socket file. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    this.#handshakes.close();
    for (const connection of this.#connections) connection.close();
    this.#events.length = 0;
    for (const request of this.#unanswered) {
      request._refuse("the server closed").catch(() => {});
    }
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Resolves once closed and no wait of the server (for clients, for handshakes) still
   * runs on the thread pool: what an op sanitizer, or a process about to exit, waits for.
   */
  get released(): Promise<void> {
    return (async () => {
      await Promise.all([this.#listener.released, this.#handshakes.released, this.#acceptLoopDone]);
      // Read after close (the awaits above settle only then): the channels close() ended.
      while (this.#draining.size > 0) await Promise.all([...this.#draining]);
    })();
  }

  /** Closes, then waits until {@link AlpcServer.released}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.released;
  }
}

/** Options of {@link AlpcClient.connect}. */
export interface AlpcConnectOptions extends AlpcLimits, WaitOptions, OwnershipOptions {
  /** The connection payload the server sees. */
  payload?: Uint8Array | string;
  /** Size of this client's section for large messages: default 0 (none: in place only). */
  sectionSize?: number;
  /** Handles the server's callbacks (unless a request passes its own `onCallback`). */
  onCallback?: AlpcHandler;
}

/**
 * A client's communication port: `sendWaitReceive` requests, datagrams, callbacks.
 *
 * @example Three paths by size: inline, through the client's section, in place
 * ```ts
 * import { AlpcClient, AlpcServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * await using server = AlpcServer.create(`doc-${crypto.randomUUID().slice(0, 8)}`);
 * const paths: string[] = [];
 * const serving = (async () => {
 *   for await (const event of server) {
 *     if (event.type === "connect") await event.request.accept();
 *     else if (event.type === "request") {
 *       paths.push(event.message.path);
 *       await event.message.reply(String(event.message.data.length));
 *     } else if (event.type === "port-closed") return;
 *   }
 * })();
 * using client = await AlpcClient.connect(server.name, { sectionSize: 64 * 1024 });
 * for (const size of [100, 10_000, 100_000]) {
 *   using reply = await client.sendWaitReceive(new Uint8Array(size), { timeout: 5000 });
 *   assert.equal(reply.text(), String(size));
 * }
 * client.close();
 * await serving;
 * assert.deepEqual(paths, ["inline", "section", "vm"]);
 * ```
 */
export class AlpcClient implements Disposable, AsyncDisposable {
  /** The connection port's name. */
  readonly name: string;
  /** What the server said when it accepted. */
  readonly serverPayload: Uint8Array;
  /** The server's pid, uid and gid (SO_PEERCRED). */
  readonly serverCredentials: PeerCredentials;
  readonly #channel: Channel;
  readonly #queue: AlpcMessage[] = [];
  #wake: (() => void) | undefined;
  readonly #ended = Promise.withResolvers<CloseReason>();

  private constructor(
    name: string,
    payload: Uint8Array,
    credentials: PeerCredentials,
    make: (client: AlpcClient) => Channel,
  ) {
    this.name = name;
    this.serverPayload = payload;
    this.serverCredentials = credentials;
    this.#channel = make(this);
  }

  /**
   * Connects to the port `name`: resolves once the server accepted, rejects with
   * {@link AlpcConnectionRefusedError} when it refused.
   */
  static async connect(name: string, options: AlpcConnectOptions = {}): Promise<AlpcClient> {
    validatePortName(name);
    const checked = validateOptions<AlpcConnectOptions>(options, "connect");
    const path = portPath(name, checked.directory);
    const limits = checkLimits(checked);
    const wait = validateWaitOptions({ timeout: checked.timeout, signal: checked.signal });
    const ownership = validateOwnership(checked);
    const sectionSize = validateInteger(checked.sectionSize ?? 0, "sectionSize", 0, MAX_SECTION);
    const payload = toPayload(checked.payload ?? new Uint8Array(), "payload");
    if (payload.length > MAX_CONNECTION_PAYLOAD) {
      throw new RangeError(
        `Invalid payload: ${payload.length} bytes, over the connection payload limit of ${MAX_CONNECTION_PAYLOAD}`,
      );
    }
    if (checked.onCallback !== undefined && typeof checked.onCallback !== "function") {
      throw new TypeError("Invalid onCallback: expected a function");
    }
    const { symbols } = libc();
    const fd = await UnixStream.connectDescriptor(path, ownership, wait);
    let ownSection: OwnSection | undefined;
    let peerSection: PeerSection | undefined;
    let handedOver = false;
    try {
      const credentials = peerCredentialsOf(fd, name);
      if (sectionSize > 0) ownSection = OwnSection.create(sectionSize, name);
      await sendHandshake(
        fd,
        encodeHandshake(0, sectionSize, limits.inlineLimit, payload),
        ownSection ? [ownSection.descriptor] : [],
        name,
        wait,
      );
      ownSection?.closeDescriptor();
      const answer = await receiveHandshake(fd, name, wait);
      if (answer.status === STATUS.refused) {
        if (answer.descriptor !== undefined) symbols.close(answer.descriptor);
        throw new AlpcConnectionRefusedError(name, new TextDecoder().decode(answer.payload));
      }
      if (
        answer.status !== STATUS.accepted || answer.inlineLimit > limits.inlineLimit ||
        (answer.sectionSize > 0) !== (answer.descriptor !== undefined) ||
        answer.sectionSize > MAX_SECTION
      ) {
        if (answer.descriptor !== undefined) symbols.close(answer.descriptor);
        throw errnoError(ERRNO.EBADMSG, "connect", {
          objectName: name,
          message: `ALPC port "${name}" answered the connection with a malformed reply`,
        });
      }
      if (answer.descriptor !== undefined) {
        peerSection = PeerSection.map(answer.descriptor, answer.sectionSize, name);
      }
      const stream = new UnixStream(fd, path, false);
      handedOver = true;
      return new AlpcClient(name, answer.payload, credentials, (client) =>
        new Channel({
          connection: new FramedConnection(stream as unknown as Deno.Conn, {
            maxFrameSize: HEADER_SIZE + answer.inlineLimit + 4096,
          }),
          peer: credentials,
          name,
          inlineLimit: answer.inlineLimit,
          maxMessageSize: limits.maxMessageSize,
          ownSection,
          peerSection,
          onCallback: checked.onCallback,
          deliver: (message) => client.#deliver(message),
          ended: (reason) => client.#end(reason),
        }));
    } catch (error) {
      ownSection?.close();
      peerSection?.close();
      if (!handedOver) closeWakingPolls(fd);
      throw error;
    }
  }

  #deliver(message: AlpcMessage): void {
    this.#queue.push(message);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #end(reason: CloseReason): void {
    this.#ended.resolve(reason);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Sends a request and waits for its reply (release the reply when done with it). */
  sendWaitReceive(data: Uint8Array | string, options?: AlpcSendOptions): Promise<AlpcMessage> {
    try {
      return this.#channel.request(toPayload(data), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends a datagram: no reply. */
  send(data: Uint8Array | string, options?: AlpcSendOptions): Promise<void> {
    try {
      return this.#channel.datagram(toPayload(data), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The next datagram or request the server sent that is not a callback. */
  async receive(options?: WaitOptions): Promise<AlpcMessage> {
    const wait = validateWaitOptions(options);
    while (true) {
      const message = this.#queue.shift();
      if (message) {
        this.#channel.taken(message);
        return message;
      }
      const reason = this.#channel.closedReason;
      if (reason) throw new PortClosedError(reason, this.name, "receive on");
      const woken = new Promise<void>((resolve) => this.#wake = resolve);
      await within(woken, wait, (ms) => timedOutError("receive on", "ALPC port", this.name, ms));
    }
  }

  /** Resolves when the channel ends, with why ("port-closed": the server closed it). */
  get closed(): Promise<CloseReason> {
    return this.#ended.promise;
  }

  /** Why the channel ended, or undefined while open. */
  get closedReason(): CloseReason | undefined {
    return this.#channel.closedReason;
  }

  /** Requests waiting for replies now. */
  get inFlight(): number {
    return this.#channel.inFlight;
  }

  /** Closes the port: the server sees port-closed; requests in flight fail. Idempotent. */
  close(): void {
    this.#channel.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Resolves once closed and no send of this port still waits on the thread pool: what
   * an op sanitizer, or a process about to exit, waits for.
   */
  get released(): Promise<void> {
    return this.#channel.released;
  }

  /** Closes, then waits until {@link AlpcClient.released}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.released;
  }
}

// Shuts a socket down before closing it: a handshake's poll(2) still running on the
// thread pool returns at once (closing the descriptor alone would not wake it).
function closeWakingPolls(fd: number): void {
  const { symbols } = libc();
  symbols.shutdown(fd, C.SHUT_RDWR);
  symbols.close(fd);
}

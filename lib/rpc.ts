/**
 * Remote procedure calls over framed sockets (TCP or Unix) or ALPC ports (address
 * `{ transport: "alpc", name }`, see alpc.ts: large arguments and results then go
 * through the channel's sections, or are read in place): a server registers
 * procedures, a client calls them through a typed stub, arguments and results travel as
 * MessagePack, and a small registry process (the "matchmaker") lets clients find a
 * service by name.
 *
 * MessagePack (`@msgpack/msgpack`: the format's reference implementation for
 * JavaScript, maintained, no dependencies) carries binary data as bytes, not base64;
 * numbers, strings, arrays, maps, `null`, booleans and `Date` as themselves; this module
 * adds `bigint` and `Error` (name and message). `undefined` arrives as `null`, and `-0` as
 * `0`.
 *
 * @module
 */
import { decode, encode, ExtensionCodec } from "npm:@msgpack/msgpack@^3.1.3";
import { ERRNO } from "../ffi/constants.ts";
import { ClosedError, ErrnoError, stringArgument, timedOutError } from "../ffi/errno.ts";
import { type OwnershipOptions } from "./_owner.ts";
import { describe, validateInteger, validateOptions } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import {
  FramedConnection,
  FramedServer,
  type FramingOptions,
  type PeerCredentials,
  type SocketAddress,
  validateMaxFrame,
  validateSocketAddress,
} from "./socket.ts";
import {
  AlpcClientStream,
  type AlpcRpcAddress,
  AlpcRpcListener,
  type RpcListener,
  type RpcStream,
} from "./_rpc_alpc.ts";
import { AlpcClient, validatePortName } from "./alpc.ts";

export type { AlpcRpcAddress } from "./_rpc_alpc.ts";
/** Where an RPC server listens: a socket address, or an ALPC connection port's name. */
export type RpcAddress = SocketAddress | AlpcRpcAddress;

function isAlpc(address: unknown): address is AlpcRpcAddress {
  return (address as { transport?: unknown } | null)?.transport === "alpc";
}

/** What a server exposes: procedures by name. */
// deno-lint-ignore no-explicit-any
export type Procedures = Record<string, (...args: any[]) => unknown>;

/** A client-side stub: each procedure as a local async function. */
export type Stub<T extends Procedures> = {
  readonly [K in keyof T]: (...args: Parameters<T[K]>) => Promise<Awaited<ReturnType<T[K]>>>;
};

/** The remote procedure threw: `remoteName` and `message` are the remote error's. */
export class RemoteError extends Error {
  /** The remote error's name, e.g. `"TypeError"`. */
  readonly remoteName: string;
  /** The procedure that threw. */
  readonly procedure: string;

  /** Creates the error. */
  constructor(procedure: string, remoteName: string, message: string) {
    stringArgument(procedure, "procedure");
    stringArgument(remoteName, "remoteName");
    super(stringArgument(message, "message"));
    this.name = "RemoteError";
    this.remoteName = remoteName;
    this.procedure = procedure;
  }
}

/** The server has no procedure of that name. */
export class UnknownProcedureError extends Error {
  /** Creates the error. */
  constructor(procedure: string) {
    stringArgument(procedure, "procedure");
    super(`The server has no procedure "${procedure}"`);
    this.name = "UnknownProcedureError";
  }
}

/**
 * The arguments do not suit the procedure: too few for its parameters, or rejected by
 * the procedure itself (throw this from a procedure to say so).
 */
export class BadArgumentsError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(stringArgument(message, "message"));
    this.name = "BadArgumentsError";
  }
}

/**
 * The server refused: it already serves `maxConnections` clients (`limit` is
 * `"connections"`: the connection was closed, every call on it fails), or this
 * connection already has `maxConcurrentCalls` calls running (`"calls"`: only this call
 * failed; try again later).
 */
export class ServerBusyError extends Error {
  /** Which of the server's limits was reached. */
  readonly limit: "connections" | "calls";

  /** Creates the error. */
  constructor(limit: "connections" | "calls", message: string) {
    if (limit !== "connections" && limit !== "calls") {
      throw new TypeError(
        `Invalid limit: expected "connections" or "calls", got ${describe(limit)}`,
      );
    }
    stringArgument(message, "message");
    super(message);
    this.name = "ServerBusyError";
    this.limit = limit;
  }
}

/**
 * Another live server holds the service name at the matchmaker: a registration is
 * replaced only by its owner (the same server, or the same process as the kernel
 * reports it), or once its server no longer answers.
 */
export class ServiceNameTakenError extends Error {
  /** Creates the error. */
  constructor(name: string, message?: string) {
    stringArgument(name, "name");
    if (message !== undefined) stringArgument(message, "message");
    super(
      message ??
        `The service name "${name}" is registered by another server that still answers`,
    );
    this.name = "ServiceNameTakenError";
  }
}

/**
 * What a procedure written as a method or `function` (not an arrow function) gets as
 * `this`: facts about the call that the kernel vouches for.
 */
export interface CallContext {
  /**
   * The calling process's pid, uid and gid as the kernel recorded them when it
   * connected (SO_PEERCRED): over Unix sockets only, `undefined` over TCP.
   */
  readonly peerCredentials: PeerCredentials | undefined;
}

/** The connection to the server dropped before the reply came (or before the call). */
export class ConnectionLostError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    stringArgument(message, "message");
    if (options !== undefined && (options === null || typeof options !== "object")) {
      throw new TypeError(`Invalid options: expected an object, got ${describe(options)}`);
    }
    super(message, options);
    this.name = "ConnectionLostError";
  }
}

const REQUEST = 0;
const REPLY = 1;
const OK = 0;
const FAILED = 1;
const KIND_REMOTE = "remote";
const KIND_UNKNOWN = "unknown-procedure";
const KIND_BAD_ARGUMENTS = "bad-arguments";
const KIND_BAD_REQUEST = "bad-request";
const KIND_BUSY = "server-busy";
// The request id of the server's refusal of a whole connection (calls start at 1).
const REFUSAL_ID = 0;
// How long a call whose request could not be written waits for the server's last words
// (a refusal) before failing as a lost connection.
const LAST_WORDS_MS = 1000;
const DEFAULT_MAX_CONNECTIONS = 1024;
const DEFAULT_MAX_CALLS = 256;

const EXT_ERROR = 0;
const EXT_BIGINT = 1;
const codec = new ExtensionCodec();
codec.register({
  type: EXT_ERROR,
  encode: (value) => value instanceof Error ? encode([value.name, value.message]) : null,
  decode: (data) => {
    const [name, message] = decode(data) as [string, string];
    const error = new Error(message);
    error.name = name;
    return error;
  },
});
codec.register({
  type: EXT_BIGINT,
  encode: (value) => typeof value === "bigint" ? encode(value.toString()) : null,
  decode: (data) => BigInt(decode(data) as string),
});

/** Encodes a value the way calls and replies travel (MessagePack, see the module doc). */
export function marshal(value: unknown): Uint8Array {
  try {
    return encode(value, { extensionCodec: codec });
  } catch (error) {
    throw new TypeError(
      `Invalid value: it cannot be marshalled (${(error as Error)?.message})`,
      { cause: error },
    );
  }
}

/**
 * Decodes what {@link marshal} made. Bytes that are not exactly one MessagePack value
 * are a RangeError naming `bytes`.
 */
export function unmarshal(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`Invalid bytes: expected a Uint8Array, got ${describe(bytes)}`);
  }
  if (bytes.length === 0) {
    throw new RangeError("Invalid bytes: empty (a marshalled value is at least 1 byte)");
  }
  try {
    return decode(bytes, { extensionCodec: codec });
  } catch (error) {
    throw new RangeError(
      `Invalid bytes: not one MessagePack value (${(error as Error)?.message})`,
      { cause: error },
    );
  }
}

/**
 * Options of {@link RpcClient.connect}. Over a Unix socket, its file must belong to this
 * user and give no group/other access unless the {@link OwnershipOptions} allow it.
 */
export interface RpcClientOptions extends FramingOptions, OwnershipOptions {
  /** Timeout of each call made through the stub, in ms. Default: none. */
  callTimeout?: number;
  /** Timeout of the connection attempt, in ms. Default: none. */
  connectTimeout?: number;
  /** Called with every frame sent and received (for tracing). */
  onFrame?: (direction: "request" | "reply", message: unknown, bytes: number) => void;
  /** Over ALPC: size of this client's section for large arguments (default 1 MiB). */
  sectionSize?: number;
}

/** Where the matchmaker is, for {@link RpcClient.connectByName}. */
export interface LookupOptions extends RpcClientOptions {
  /** The matchmaker's address. */
  registry: SocketAddress;
}

/**
 * A connection to an {@link RpcServer}. Calls made on one connection run concurrently
 * (each has a request id), and each may have its own timeout.
 *
 * Errors, each its own class: `RemoteError` (the procedure threw; remote name and
 * message), `UnknownProcedureError`, `BadArgumentsError`, `ConnectionLostError` (the
 * connection dropped; every call in flight gets it), `ServerBusyError` (the server
 * refused the connection or the call: see its `limit`), `TimedOutError`.
 *
 * @example A typed stub
 * ```ts
 * import { RpcClient, RpcServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const procedures = {
 *   add: (a: number, b: number) => a + b,
 *   reverse: (bytes: Uint8Array) => bytes.toReversed(),
 * };
 * await using server = RpcServer.listen({ transport: "tcp", port: 0 }, procedures);
 * using client = await RpcClient.connect<typeof procedures>(server.address);
 * assert.equal(await client.stub.add(2, 3), 5);
 * assert.deepEqual(await client.stub.reverse(new Uint8Array([1, 2])), new Uint8Array([2, 1]));
 * ```
 */
export class RpcClient<T extends Procedures = Procedures> implements Disposable {
  readonly #connection: RpcStream;
  readonly #pending = new Map<number, {
    procedure: string;
    resolve: (value: unknown) => void;
    reject: (error: unknown) => void;
  }>();
  readonly #callTimeout: number | undefined;
  readonly #onFrame: RpcClientOptions["onFrame"];
  readonly #label: string;
  #nextId = 1;
  #lost: ConnectionLostError | ServerBusyError | undefined;
  readonly #readerDone: Promise<void>;
  #closedByUser = false;
  /** Each procedure of the server as a local async function. */
  readonly stub: Stub<T>;

  private constructor(connection: RpcStream, options: RpcClientOptions, label: string) {
    this.#connection = connection;
    this.#callTimeout = options.callTimeout;
    this.#onFrame = options.onFrame;
    this.#label = label;
    this.stub = new Proxy({}, {
      get: (_, property) => {
        // Not thenable: `await stub` must not look for a procedure named "then".
        if (typeof property !== "string" || property === "then") return undefined;
        return (...args: unknown[]) => this.call(property, args);
      },
    }) as Stub<T>;
    this.#readerDone = this.#readReplies();
  }

  /** Connects to a server by address. */
  static async connect<T extends Procedures = Procedures>(
    address: RpcAddress,
    options: RpcClientOptions = {},
  ): Promise<RpcClient<T>> {
    const checked = isAlpc(address) ? undefined : validateSocketAddress(address, false);
    const opts = validateOptions<RpcClientOptions>(options, "RPC client");
    if (opts.callTimeout !== undefined) validateWaitOptions({ timeout: opts.callTimeout });
    if (checked === undefined) {
      const { name } = address as AlpcRpcAddress;
      const maxFrameSize = validateMaxFrame(opts);
      const port = await AlpcClient.connect(validatePortName(name), {
        sectionSize: opts.sectionSize ?? 2 ** 20,
        maxMessageSize: maxFrameSize,
        timeout: opts.connectTimeout,
        allowModes: opts.allowModes,
        allowOtherOwners: opts.allowOtherOwners,
      });
      return new RpcClient<T>(new AlpcClientStream(port, maxFrameSize), opts, `alpc:${name}`);
    }
    const connection = await FramedConnection.connect(checked, {
      maxFrameSize: opts.maxFrameSize,
      timeout: opts.connectTimeout,
      allowModes: opts.allowModes,
      allowOtherOwners: opts.allowOtherOwners,
    });
    const label = checked.transport === "tcp"
      ? `${checked.hostname}:${checked.port}`
      : checked.path;
    return new RpcClient<T>(connection, opts, label);
  }

  /** Finds the service `name` through the matchmaker, then connects to it. */
  static async connectByName<T extends Procedures = Procedures>(
    name: string,
    options: LookupOptions,
  ): Promise<RpcClient<T>> {
    const checked = validateOptions<LookupOptions>(options, "lookup");
    const address = await lookupService(name, checked.registry!, checked);
    return RpcClient.connect<T>(address, options);
  }

  /** Whether the connection is gone (closed or dropped). */
  get closed(): boolean {
    return this.#connection.closed;
  }

  /** Calls `procedure` with `args`; `options.timeout` overrides `callTimeout`. */
  call(procedure: string, args: unknown[] = [], options?: WaitOptions): Promise<unknown> {
    if (typeof procedure !== "string" || procedure.length === 0) {
      return Promise.reject(new TypeError(`Invalid procedure name ${describe(procedure)}`));
    }
    if (!Array.isArray(args)) {
      return Promise.reject(new TypeError(`Invalid args: expected an array of arguments`));
    }
    let wait: WaitOptions;
    let frame: Uint8Array;
    const id = this.#nextId;
    this.#nextId = (this.#nextId + 1) % 2 ** 31 || 1;
    try {
      wait = validateWaitOptions({ timeout: this.#callTimeout, ...options });
      wait.signal?.throwIfAborted();
      if (this.#lost) throw this.#lost;
      if (this.#connection.closed) {
        throw this.#closedByUser ? this.#closedError() : new ConnectionLostError(
          `Cannot call ${procedure}: the connection to ${this.#label} dropped`,
        );
      }
      const request = [REQUEST, id, procedure, args];
      try {
        frame = marshal(request);
      } catch (error) {
        throw new TypeError(
          `Invalid args of ${procedure}: they cannot be marshalled ` +
            `(${((error as Error).cause as Error)?.message})`,
          { cause: error },
        );
      }
      this.#onFrame?.("request", request, frame.length);
    } catch (error) {
      return Promise.reject(error);
    }
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { procedure, resolve, reject });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = () => {
      this.#pending.delete(id);
      clearTimeout(timer);
      wait.signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      settle();
      reject(wait.signal!.reason);
    };
    if (wait.timeout !== undefined && wait.timeout <= 2 ** 31 - 1) {
      timer = setTimeout(() => {
        settle();
        reject(timedOutError(`call ${procedure}`, "RPC server", this.#label, wait.timeout!));
      }, wait.timeout);
    }
    wait.signal?.addEventListener("abort", onAbort, { once: true });
    this.#connection.send(frame).catch(async (error) => {
      // The server may have refused this connection and closed it: its refusal is on
      // the way to the reader. Give it a moment to arrive before calling this a loss.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#readerDone,
        new Promise((resolve) => timer = setTimeout(resolve, LAST_WORDS_MS)),
      ]);
      clearTimeout(timer);
      const entry = this.#pending.get(id);
      if (entry) {
        settle();
        entry.reject(
          this.#lost ?? new ConnectionLostError(
            `Cannot call ${procedure}: the connection to ${this.#label} is gone`,
            { cause: error },
          ),
        );
      }
    });
    return promise.finally(settle);
  }

  /** Closes the connection; calls in flight get `ConnectionLostError`. Idempotent. */
  close(): void {
    this.#closedByUser = true;
    this.#connection.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #closedError(): ClosedError {
    return new ClosedError(ERRNO.EBADF, "call", {
      objectName: this.#label,
      message: `Cannot call: the RPC client for ${this.#label} is closed`,
    });
  }

  async #readReplies(): Promise<void> {
    let cause: unknown;
    try {
      for await (const frame of this.#connection) {
        const reply = unmarshal(frame);
        this.#onFrame?.("reply", reply, frame.length);
        if (!Array.isArray(reply) || reply[0] !== REPLY) continue;
        const [, id, status, value] = reply as [number, number, number, unknown];
        if (id === REFUSAL_ID && status === FAILED) {
          this.#lost = replyError("", value) as ServerBusyError;
          for (const entry of this.#pending.values()) entry.reject(this.#lost);
          this.#pending.clear();
          continue;
        }
        const entry = this.#pending.get(id);
        if (!entry) continue; // timed out or aborted meanwhile
        if (status === OK) entry.resolve(value);
        else entry.reject(replyError(entry.procedure, value));
      }
    } catch (error) {
      cause = error;
    }
    const reason = this.#connection.closed && cause instanceof ErrnoError && cause.code === "EBADF"
      ? "it was closed"
      : "the server closed it or went away";
    this.#lost ??= new ConnectionLostError(
      `Connection to RPC server ${this.#label} lost: ${reason}`,
      { cause },
    );
    for (const entry of this.#pending.values()) entry.reject(this.#lost);
    this.#pending.clear();
    this.#connection.close();
  }
}

function replyError(procedure: string, value: unknown): Error {
  const { kind, name, message } = (value ?? {}) as {
    kind?: string;
    name?: string;
    message?: string;
  };
  switch (kind) {
    case KIND_UNKNOWN:
      return new UnknownProcedureError(procedure);
    case KIND_BAD_ARGUMENTS:
      return new BadArgumentsError(`Bad arguments for ${procedure}: ${message}`);
    case KIND_BAD_REQUEST:
      return new TypeError(`The server could not read the call to ${procedure}: ${message}`);
    case KIND_BUSY: {
      const { limit } = value as { limit?: unknown };
      return new ServerBusyError(
        limit === "connections" ? "connections" : "calls",
        procedure === ""
          ? `The RPC server refused the connection: ${message}`
          : `The RPC server refused the call to ${procedure}: ${message}`,
      );
    }
    default:
      return new RemoteError(procedure, String(name ?? "Error"), String(message ?? ""));
  }
}

/** Options of {@link RpcServer.listen}. */
export interface RpcServerOptions extends FramingOptions {
  /**
   * Most clients connected at once; one more is refused: its calls fail with
   * `ServerBusyError` (`limit: "connections"`). Default: 1024.
   */
  maxConnections?: number;
  /**
   * Most calls of one connection running at once (a call counts until its reply is
   * written); one more fails at once with `ServerBusyError` (`limit: "calls"`), and a
   * client that keeps calling without reading its replies is no longer read from until
   * it does. Default: 256.
   */
  maxConcurrentCalls?: number;
  /** Permission bits of a Unix socket's file. Default: `0o600`. */
  mode?: number;
  /** Over ALPC: size of the server's section for large results, per client (default 1 MiB). */
  replySectionSize?: number;
  /** Called with every frame received and sent (for tracing). */
  onFrame?: (direction: "request" | "reply", message: unknown, bytes: number) => void;
  /** Called when a client sends something unreadable (its connection is closed). */
  onClientError?: (error: unknown) => void;
}

/**
 * Serves `procedures` to {@link RpcClient}s. Each request runs as soon as it arrives
 * (calls from one client run concurrently). A client that sends a corrupt frame or
 * garbage loses its connection; the server keeps serving the others. Clients beyond
 * `maxConnections`, and calls beyond `maxConcurrentCalls` on one connection, are
 * refused with `ServerBusyError`.
 *
 * A procedure written as a method or `function` gets a {@link CallContext} as `this`:
 * over a Unix socket, `this.peerCredentials` names the calling process and user as the
 * kernel saw them, which the caller cannot forge. Arguments are whatever the client
 * sent: nothing in them is verified.
 *
 * @example Registering with the matchmaker
 * ```ts
 * import { Matchmaker, RpcClient, RpcServer } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * await using registry = Matchmaker.listen({ transport: "tcp", port: 0 });
 * await using server = RpcServer.listen({ transport: "tcp", port: 0 }, {
 *   greet: (name: string) => `hello ${name}`,
 * });
 * await server.registerWith(registry.address, "greeter");
 * using client = await RpcClient.connectByName("greeter", { registry: registry.address });
 * assert.equal(await client.call("greet", ["you"]), "hello you");
 * ```
 */
export class RpcServer<A extends RpcAddress = SocketAddress> implements AsyncDisposable {
  readonly #server: RpcListener & { readonly address: RpcAddress };
  readonly #procedures: Map<string, Procedures[string]>;
  readonly #serving: Promise<void>;
  readonly #options: RpcServerOptions;
  readonly #connections = new Set<RpcStream>();
  readonly #maxCalls: number;
  #registration: { registry: SocketAddress; name: string; token: string } | undefined;
  readonly #closing = Promise.withResolvers<void>();
  #closed = false;

  private constructor(
    server: RpcListener & { readonly address: RpcAddress },
    procedures: Procedures,
    options: RpcServerOptions,
    maxCalls: number,
  ) {
    this.#server = server;
    this.#options = options;
    this.#maxCalls = maxCalls;
    this.#procedures = new Map(Object.entries(procedures));
    this.#serving = server.serve(
      (connection) => this.#serveClient(connection),
      (error) => options.onClientError?.(error),
    );
    this.#serving.catch(() => {}); // awaited by close()
  }

  /** Starts serving on `address` (TCP binds to loopback unless told otherwise). */
  static listen<A extends RpcAddress = SocketAddress>(
    address: A,
    procedures: Procedures,
    options: RpcServerOptions = {},
  ): RpcServer<A extends AlpcRpcAddress ? AlpcRpcAddress : SocketAddress> {
    if (procedures === null || typeof procedures !== "object") {
      throw new TypeError(`Invalid procedures: expected an object of functions`);
    }
    for (const [name, fn] of Object.entries(procedures)) {
      if (typeof fn !== "function") {
        throw new TypeError(
          `Invalid procedures: "${name}" is not a function but ${describe(fn)}`,
        );
      }
    }
    const opts = validateOptions<RpcServerOptions>(options, "RPC server");
    const maxCalls = validateInteger(
      opts.maxConcurrentCalls ?? DEFAULT_MAX_CALLS,
      "maxConcurrentCalls",
      1,
    );
    const maxConnections = validateInteger(
      opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      "maxConnections",
      1,
    );
    if (isAlpc(address)) {
      const listener = new AlpcRpcListener(validatePortName(address.name), {
        maxConnections,
        maxFrameSize: validateMaxFrame(opts),
        replySectionSize: opts.replySectionSize ?? 2 ** 20,
        mode: opts.mode,
      });
      return new RpcServer(listener, procedures, opts, maxCalls);
    }
    const server = FramedServer.listen(address, {
      maxFrameSize: opts.maxFrameSize,
      maxConnections,
      mode: opts.mode,
      refusalMessage: marshal([REPLY, REFUSAL_ID, FAILED, {
        kind: KIND_BUSY,
        limit: "connections",
        message: `it already serves ${maxConnections} clients (maxConnections)`,
      }]),
    });
    return new RpcServer(server, procedures, opts, maxCalls);
  }

  /** The address clients connect to. */
  get address(): A {
    return this.#server.address as A;
  }

  /**
   * Registers this server under `name` with the matchmaker at `registry`.
   * `ServiceNameTakenError` when another server that still answers holds the name.
   */
  async registerWith(
    registry: SocketAddress,
    name: string,
    options: OwnershipOptions = {},
  ): Promise<void> {
    validateSocketAddress(registry, false, "registry address");
    const address = this.address;
    if (isAlpc(address)) {
      throw new TypeError("Cannot register an ALPC server: the matchmaker holds socket addresses");
    }
    using client = await RpcClient.connect<MatchmakerProcedures>(registry, {
      callTimeout: 10_000,
      ...validateOptions<OwnershipOptions>(options, "registration"),
    });
    const previous = this.#registration?.name === name ? this.#registration.token : undefined;
    let token: string;
    try {
      token = await client.stub.register(name, address, previous);
    } catch (error) {
      if (error instanceof RemoteError && error.remoteName === "ServiceNameTakenError") {
        throw new ServiceNameTakenError(name, error.message);
      }
      throw error;
    }
    this.#registration = { registry, name, token };
  }

  /**
   * Stops accepting, unregisters from the matchmaker (if registered), closes client
   * connections and waits for the serving loop to end. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#registration) {
      const { registry, name, token } = this.#registration;
      try {
        using client = await RpcClient.connect<MatchmakerProcedures>(registry, {
          callTimeout: 2000,
          connectTimeout: 2000,
          allowModes: 0o077,
          allowOtherOwners: true,
        });
        await client.stub.unregister(name, this.address as SocketAddress, token);
      } catch { /* the matchmaker is gone: nothing to undo */ }
    }
    this.#closing.resolve();
    this.#server.close();
    for (const connection of this.#connections) connection.close();
    await this.#serving.catch(() => {});
    await this.#server.released;
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #serveClient(connection: RpcStream): Promise<void> {
    this.#connections.add(connection);
    const context: CallContext = Object.freeze({
      peerCredentials: connection.peerCredentials,
    });
    try {
      // Calls running or whose replies are still being written, and refusals being
      // written: a client that does not read its replies stops being read (below), so
      // neither grows past twice the limit.
      const running = new Set<Promise<void>>();
      let calls = 0;
      try {
        for await (const frame of connection) {
          let task: Promise<void>;
          if (calls >= this.#maxCalls) {
            task = this.#refuseCall(connection, frame);
          } else {
            calls++;
            task = this.#handle(connection, frame, context).finally(() => calls--);
          }
          task = task.catch((error) => {
            connection.close();
            try {
              this.#options.onClientError?.(error);
            } catch { /* a failing error handler must not take the server down */ }
          });
          running.add(task);
          task.finally(() => running.delete(task));
          if (running.size >= 2 * this.#maxCalls) await Promise.race(running);
        }
      } finally {
        // Replies still being computed go out before the connection closes, unless the
        // server is closing: a procedure that never settles must not hold close() up.
        await Promise.race([Promise.allSettled(running), this.#closing.promise]);
      }
    } catch (error) {
      if (!(error instanceof ClosedError)) throw error;
    } finally {
      this.#connections.delete(connection);
    }
  }

  // The call as [id, procedure, args], or undefined once the client was told off.
  #readCall(
    connection: RpcStream,
    frame: Uint8Array,
  ): [number, unknown, unknown] | undefined {
    let request: unknown;
    try {
      request = unmarshal(frame);
    } catch (error) {
      throw new TypeError(`A client sent a frame that is not MessagePack`, { cause: error });
    }
    this.#options.onFrame?.("request", request, frame.length);
    if (!Array.isArray(request) || request[0] !== REQUEST || !Number.isInteger(request[1])) {
      // Nothing to reply to: the client does not speak this protocol.
      connection.close();
      this.#options.onClientError?.(new TypeError("A client sent something that is not a call"));
      return undefined;
    }
    return [request[1], request[2], request[3]];
  }

  async #refuseCall(connection: RpcStream, frame: Uint8Array): Promise<void> {
    const call = this.#readCall(connection, frame);
    if (call === undefined) return;
    await this.#reply(connection, [REPLY, call[0], FAILED, {
      kind: KIND_BUSY,
      limit: "calls",
      message: `this connection already has ${this.#maxCalls} calls running ` +
        `(maxConcurrentCalls)`,
    }]);
  }

  async #handle(
    connection: RpcStream,
    frame: Uint8Array,
    context: CallContext,
  ): Promise<void> {
    const call = this.#readCall(connection, frame);
    if (call === undefined) return;
    const [id, procedure, args] = call;
    let reply: unknown[];
    const fn = typeof procedure === "string" ? this.#procedures.get(procedure) : undefined;
    if (typeof procedure !== "string" || !Array.isArray(args)) {
      reply = [REPLY, id, FAILED, { kind: KIND_BAD_REQUEST, message: "malformed call" }];
    } else if (fn === undefined) {
      reply = [REPLY, id, FAILED, { kind: KIND_UNKNOWN }];
    } else if (args.length < fn.length) {
      reply = [REPLY, id, FAILED, {
        kind: KIND_BAD_ARGUMENTS,
        message: `it takes ${fn.length} arguments, got ${args.length}`,
      }];
    } else {
      try {
        reply = [REPLY, id, OK, await fn.apply(context, args)];
      } catch (error) {
        const name = error instanceof Error ? error.name : "Error";
        const message = error instanceof Error ? error.message : String(error);
        const kind = error instanceof BadArgumentsError ? KIND_BAD_ARGUMENTS : KIND_REMOTE;
        reply = [REPLY, id, FAILED, { kind, name, message }];
      }
    }
    await this.#reply(connection, reply);
  }

  async #reply(connection: RpcStream, reply: unknown[]): Promise<void> {
    const id = reply[1];
    let bytes: Uint8Array;
    try {
      bytes = marshal(reply);
    } catch (error) {
      reply = [REPLY, id, FAILED, {
        kind: KIND_REMOTE,
        name: "TypeError",
        message: `the result cannot be marshalled: ${(error as Error).message}`,
      }];
      bytes = marshal(reply);
    }
    this.#options.onFrame?.("reply", reply, bytes.length);
    try {
      await connection.send(bytes);
    } catch { /* the client went away: nobody to tell */ }
  }
}

/** The matchmaker's procedures. */
export type MatchmakerProcedures = {
  /**
   * Registers `address` under `name` and returns the registration's token (keep it: it
   * proves ownership to `unregister` and to a later `register`). A name held by a
   * server that still answers is refused (`ServiceNameTakenError` remotely) unless
   * `token` is that registration's, or the caller is the process that registered it.
   */
  register(name: string, address: SocketAddress, token?: string): string;
  /** Removes the registration of `name` if `token` is its token. */
  unregister(name: string, address: SocketAddress, token?: string): boolean;
  lookup(name: string): SocketAddress | null;
  list(): string[];
};

/** Checks a service name (a BadArgumentsError, which a procedure may throw). */
export function validateServiceName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 200) {
    throw new BadArgumentsError(`a service name is a non-empty string, got ${describe(name)}`);
  }
  return name;
}

/** No service of that name is registered with the matchmaker. */
export class ServiceNotFoundError extends Error {
  /** Creates the error. */
  constructor(name: string) {
    stringArgument(name, "name");
    super(`No service named "${name}" is registered with the matchmaker`);
    this.name = "ServiceNotFoundError";
  }
}

/**
 * Asks the matchmaker at `registry` where service `name` is; `ServiceNotFoundError`
 * when none is registered.
 */
export async function lookupService(
  name: string,
  registry: SocketAddress,
  options: RpcClientOptions = {},
): Promise<SocketAddress> {
  validateServiceName(name);
  validateSocketAddress(registry, false, "registry address");
  const checked = validateOptions<RpcClientOptions>(options, "lookup");
  using client = await RpcClient.connect<MatchmakerProcedures>(registry, {
    callTimeout: checked.callTimeout ?? 10_000,
    connectTimeout: checked.connectTimeout,
    allowModes: checked.allowModes,
    allowOtherOwners: checked.allowOtherOwners,
  });
  const address = await client.stub.lookup(name);
  if (address === null) throw new ServiceNotFoundError(name);
  return address;
}

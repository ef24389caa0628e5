/**
 * Remote procedure calls over framed sockets (TCP or Unix): a server registers
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
import { describe, validateOptions } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import {
  FramedConnection,
  FramedServer,
  type FramingOptions,
  type SocketAddress,
  validateSocketAddress,
} from "./socket.ts";

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

/** Options of {@link RpcClient.connect}. */
export interface RpcClientOptions extends FramingOptions {
  /** Timeout of each call made through the stub, in ms. Default: none. */
  callTimeout?: number;
  /** Timeout of the connection attempt, in ms. Default: none. */
  connectTimeout?: number;
  /** Called with every frame sent and received (for tracing). */
  onFrame?: (direction: "request" | "reply", message: unknown, bytes: number) => void;
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
 * connection dropped; every call in flight gets it), `TimedOutError`.
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
  readonly #connection: FramedConnection;
  readonly #pending = new Map<number, {
    procedure: string;
    resolve: (value: unknown) => void;
    reject: (error: unknown) => void;
  }>();
  readonly #callTimeout: number | undefined;
  readonly #onFrame: RpcClientOptions["onFrame"];
  readonly #label: string;
  #nextId = 1;
  #lost: ConnectionLostError | undefined;
  #closedByUser = false;
  /** Each procedure of the server as a local async function. */
  readonly stub: Stub<T>;

  private constructor(connection: FramedConnection, options: RpcClientOptions, label: string) {
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
    this.#readReplies();
  }

  /** Connects to a server by address. */
  static async connect<T extends Procedures = Procedures>(
    address: SocketAddress,
    options: RpcClientOptions = {},
  ): Promise<RpcClient<T>> {
    const checked = validateSocketAddress(address, false);
    const opts = validateOptions<RpcClientOptions>(options, "RPC client");
    if (opts.callTimeout !== undefined) validateWaitOptions({ timeout: opts.callTimeout });
    const connection = await FramedConnection.connect(checked, {
      maxFrameSize: opts.maxFrameSize,
      timeout: opts.connectTimeout,
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
    this.#connection.send(frame).catch((error) => {
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
    this.#lost = new ConnectionLostError(
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
    default:
      return new RemoteError(procedure, String(name ?? "Error"), String(message ?? ""));
  }
}

/** Options of {@link RpcServer.listen}. */
export interface RpcServerOptions extends FramingOptions {
  /** Called with every frame received and sent (for tracing). */
  onFrame?: (direction: "request" | "reply", message: unknown, bytes: number) => void;
  /** Called when a client sends something unreadable (its connection is closed). */
  onClientError?: (error: unknown) => void;
}

/**
 * Serves `procedures` to {@link RpcClient}s. Each request runs as soon as it arrives
 * (calls from one client run concurrently). A client that sends a corrupt frame or
 * garbage loses its connection; the server keeps serving the others.
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
export class RpcServer implements AsyncDisposable {
  readonly #server: FramedServer;
  readonly #procedures: Map<string, Procedures[string]>;
  readonly #serving: Promise<void>;
  readonly #options: RpcServerOptions;
  readonly #connections = new Set<FramedConnection>();
  #registration: { registry: SocketAddress; name: string } | undefined;
  readonly #closing = Promise.withResolvers<void>();
  #closed = false;

  private constructor(server: FramedServer, procedures: Procedures, options: RpcServerOptions) {
    this.#server = server;
    this.#options = options;
    this.#procedures = new Map(Object.entries(procedures));
    this.#serving = server.serve(
      (connection) => this.#serveClient(connection),
      (error) => options.onClientError?.(error),
    );
    this.#serving.catch(() => {}); // awaited by close()
  }

  /** Starts serving on `address` (TCP binds to loopback unless told otherwise). */
  static listen(
    address: SocketAddress,
    procedures: Procedures,
    options: RpcServerOptions = {},
  ): RpcServer {
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
    const server = FramedServer.listen(address, { maxFrameSize: opts.maxFrameSize });
    return new RpcServer(server, procedures, opts);
  }

  /** The address clients connect to. */
  get address(): SocketAddress {
    return this.#server.address;
  }

  /** Registers this server under `name` with the matchmaker at `registry`. */
  async registerWith(registry: SocketAddress, name: string): Promise<void> {
    validateSocketAddress(registry, false, "registry address");
    using client = await RpcClient.connect<MatchmakerProcedures>(registry, { callTimeout: 10_000 });
    await client.stub.register(name, this.address);
    this.#registration = { registry, name };
  }

  /**
   * Stops accepting, unregisters from the matchmaker (if registered), closes client
   * connections and waits for the serving loop to end. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#registration) {
      const { registry, name } = this.#registration;
      try {
        using client = await RpcClient.connect<MatchmakerProcedures>(registry, {
          callTimeout: 2000,
          connectTimeout: 2000,
        });
        await client.stub.unregister(name, this.address);
      } catch { /* the matchmaker is gone: nothing to undo */ }
    }
    this.#closing.resolve();
    this.#server.close();
    for (const connection of this.#connections) connection.close();
    await this.#serving.catch(() => {});
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #serveClient(connection: FramedConnection): Promise<void> {
    this.#connections.add(connection);
    try {
      const running = new Set<Promise<void>>();
      try {
        for await (const frame of connection) {
          const task = this.#handle(connection, frame).catch((error) => {
            connection.close();
            try {
              this.#options.onClientError?.(error);
            } catch { /* a failing error handler must not take the server down */ }
          });
          running.add(task);
          task.finally(() => running.delete(task));
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

  async #handle(connection: FramedConnection, frame: Uint8Array): Promise<void> {
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
      return;
    }
    const [, id, procedure, args] = request as [number, number, unknown, unknown];
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
        reply = [REPLY, id, OK, await fn(...args)];
      } catch (error) {
        const name = error instanceof Error ? error.name : "Error";
        const message = error instanceof Error ? error.message : String(error);
        const kind = error instanceof BadArgumentsError ? KIND_BAD_ARGUMENTS : KIND_REMOTE;
        reply = [REPLY, id, FAILED, { kind, name, message }];
      }
    }
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
  register(name: string, address: SocketAddress): void;
  unregister(name: string, address: SocketAddress): boolean;
  lookup(name: string): SocketAddress | null;
  list(): string[];
};

/**
 * The matchmaker: a registry that maps service names to addresses, itself an RPC
 * server at a well-known address. Servers register with
 * {@link RpcServer.registerWith}; clients find them with
 * {@link RpcClient.connectByName}.
 *
 * @example
 * ```ts
 * import { Matchmaker, lookupService } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * await using registry = Matchmaker.listen({ transport: "tcp", port: 0 });
 * registry.register("clock", { transport: "tcp", hostname: "127.0.0.1", port: 4000 });
 * assert.deepEqual(await lookupService("clock", registry.address), {
 *   transport: "tcp",
 *   hostname: "127.0.0.1",
 *   port: 4000,
 * });
 * ```
 */
export class Matchmaker implements AsyncDisposable {
  readonly #server: RpcServer;
  readonly #services: Map<string, SocketAddress>;

  private constructor(server: RpcServer, services: Map<string, SocketAddress>) {
    this.#server = server;
    this.#services = services;
  }

  /** Starts the registry at `address` (loopback TCP, or a Unix socket). */
  static listen(address: SocketAddress, options: RpcServerOptions = {}): Matchmaker {
    const services = new Map<string, SocketAddress>();
    const procedures: MatchmakerProcedures = {
      register(name, serviceAddress) {
        validateServiceName(name);
        services.set(name, validateSocketAddress(serviceAddress, false));
      },
      unregister(name, serviceAddress) {
        const current = services.get(name);
        if (current && JSON.stringify(current) === JSON.stringify(serviceAddress)) {
          return services.delete(name);
        }
        return false;
      },
      lookup: (name) => services.get(name) ?? null,
      list: () => [...services.keys()],
    };
    return new Matchmaker(RpcServer.listen(address, procedures, options), services);
  }

  /** The registry's address. */
  get address(): SocketAddress {
    return this.#server.address;
  }

  /** Registers a service directly (for the process that runs the registry). */
  register(name: string, address: SocketAddress): void {
    validateServiceName(name);
    this.#services.set(name, validateSocketAddress(address, false));
  }

  /** The services registered now. */
  get services(): ReadonlyMap<string, SocketAddress> {
    return this.#services;
  }

  /** Stops the registry. */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function validateServiceName(name: unknown): string {
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
  });
  const address = await client.stub.lookup(name);
  if (address === null) throw new ServiceNotFoundError(name);
  return address;
}

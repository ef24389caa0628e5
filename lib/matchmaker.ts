/**
 * The matchmaker: a registry process that maps service names to addresses, so that RPC
 * clients find servers by name (see {@link Matchmaker}).
 *
 * @module
 */
import { ErrnoError } from "../ffi/errno.ts";
import {
  type CallContext,
  type Procedures,
  RpcServer,
  type RpcServerOptions,
  ServiceNameTakenError,
  validateServiceName,
} from "./rpc.ts";
import {
  FramedConnection,
  type PeerCredentials,
  type SocketAddress,
  validateSocketAddress,
} from "./socket.ts";

const PROBE_TIMEOUT_MS = 1000;

interface Registration {
  address: SocketAddress;
  token: string;
  // Who registered it, when the kernel says so (a Unix-socket matchmaker); undefined for
  // the registry process's own registrations.
  owner: PeerCredentials | undefined;
  local: boolean;
}

function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Whether a server still listens at `address`. Only a refused connection or a missing
// socket file counts as gone: anything else (a timeout, a permission error) might be a
// live server, and a live server's name must not be handed to someone else.
async function stillAnswers(address: SocketAddress): Promise<boolean> {
  try {
    const connection = await FramedConnection.connect(address, {
      timeout: PROBE_TIMEOUT_MS,
      allowModes: 0o077,
      allowOtherOwners: true,
    });
    connection.close();
    return true;
  } catch (error) {
    const gone = error instanceof Deno.errors.ConnectionRefused ||
      error instanceof Deno.errors.NotFound ||
      (error instanceof ErrnoError && (error.code === "ECONNREFUSED" || error.code === "ENOENT"));
    return !gone;
  }
}

/**
 * The matchmaker: a registry that maps service names to addresses, itself an RPC
 * server at a well-known address. Servers register with
 * {@link RpcServer.registerWith}; clients find them with
 * {@link RpcClient.connectByName}.
 *
 * A name cannot be taken over: while the server registered under it still accepts
 * connections, only its owner may replace or remove the registration. The owner is
 * whoever holds the token `register` returned, or, when the matchmaker listens on a
 * Unix socket, the same process (pid and uid as the kernel reports them). A server that
 * no longer answers (connection refused, socket file gone) loses its name to the next
 * registrant. What the matchmaker cannot check: that a registered address really
 * serves what its name suggests; any local process that can connect may register a
 * free name.
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
  readonly #registrations: Map<string, Registration>;
  readonly #services = new Map<string, SocketAddress>();

  private constructor(server: RpcServer, registrations: Map<string, Registration>) {
    this.#server = server;
    this.#registrations = registrations;
  }

  /** Starts the registry at `address` (loopback TCP, or a Unix socket). */
  static listen(address: SocketAddress, options: RpcServerOptions = {}): Matchmaker {
    const registrations = new Map<string, Registration>();
    const procedures = {
      async register(
        this: CallContext,
        name: string,
        serviceAddress: SocketAddress,
        token: unknown = undefined, // (a default: not counted as a required argument)
      ): Promise<string> {
        validateServiceName(name);
        const checked = validateSocketAddress(serviceAddress, false);
        const owner = this.peerCredentials;
        const current = registrations.get(name);
        if (current !== undefined && !ownedBy(current, token, owner)) {
          if (current.local || await stillAnswers(current.address)) {
            throw new ServiceNameTakenError(name);
          }
          // Someone else may have taken it while we probed.
          if (registrations.get(name) !== current) throw new ServiceNameTakenError(name);
        }
        const registration = {
          address: checked,
          token: current !== undefined && ownedBy(current, token, owner)
            ? current.token
            : newToken(),
          owner,
          local: false,
        };
        registrations.set(name, registration);
        return registration.token;
      },
      unregister(
        this: CallContext,
        name: string,
        _address: SocketAddress,
        token: unknown = undefined,
      ) {
        const current = registrations.get(name);
        if (current && !current.local && ownedBy(current, token, this.peerCredentials)) {
          return registrations.delete(name);
        }
        return false;
      },
      lookup: (name: string) => registrations.get(name)?.address ?? null,
      list: () => [...registrations.keys()],
    } satisfies Procedures;
    return new Matchmaker(RpcServer.listen(address, procedures, options), registrations);
  }

  /** The registry's address. */
  get address(): SocketAddress {
    return this.#server.address;
  }

  /**
   * Registers a service directly (for the process that runs the registry). A name that
   * another process registered is refused with `ServiceNameTakenError`.
   */
  register(name: string, address: SocketAddress): void {
    validateServiceName(name);
    const checked = validateSocketAddress(address, false);
    const current = this.#registrations.get(name);
    if (current !== undefined && !current.local) throw new ServiceNameTakenError(name);
    this.#registrations.set(name, {
      address: checked,
      token: newToken(),
      owner: undefined,
      local: true,
    });
  }

  /** The services registered now. */
  get services(): ReadonlyMap<string, SocketAddress> {
    this.#services.clear();
    for (const [name, { address }] of this.#registrations) this.#services.set(name, address);
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

// The registration's owner: the holder of its token, or the same process (pid and uid,
// as the kernel reported them for both connections).
function ownedBy(
  registration: Registration,
  token: unknown,
  caller: PeerCredentials | undefined,
): boolean {
  if (typeof token === "string" && token === registration.token) return true;
  const owner = registration.owner;
  return owner !== undefined && caller !== undefined && owner.pid === caller.pid &&
    owner.uid === caller.uid;
}

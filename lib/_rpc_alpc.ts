// RPC carried by ALPC: the RPC protocol's frames (lib/rpc.ts) travel as ALPC datagrams,
// each by the path its size calls for, so that large arguments and results go through
// the channel's sections (or are read in place) while the stubs and errors stay those of
// RPC over sockets. Received payloads are copied out and their section space released at
// once: RPC decodes them anyway.
import {
  type AlpcClient,
  type AlpcConnection,
  type AlpcMessage,
  AlpcServer,
  PortClosedError,
} from "./alpc.ts";
import type { PeerCredentials } from "./_unix_socket.ts";

/** Where an RPC server listens over ALPC: the connection port's name. */
export interface AlpcRpcAddress {
  /** Always `"alpc"`. */
  transport: "alpc";
  /** The connection port's name (see `validatePortName`). */
  name: string;
}

/** What RPC needs of a connection (a `FramedConnection` is one). */
export interface RpcStream extends AsyncIterable<Uint8Array> {
  send(bytes: Uint8Array): Promise<void>;
  close(): void;
  readonly closed: boolean;
  readonly peerCredentials: PeerCredentials | undefined;
}

/** What RPC needs of a server (a `FramedServer` is one, for its connections). */
export interface RpcListener {
  serve(
    handler: (connection: RpcStream) => Promise<void> | void,
    onError: (error: unknown) => void,
  ): Promise<void>;
  close(): void;
  readonly released: Promise<void>;
}

/** A client's RPC frames over its ALPC port. */
export class AlpcClientStream implements RpcStream {
  readonly #client: AlpcClient;

  constructor(client: AlpcClient) {
    this.#client = client;
  }

  send(bytes: Uint8Array): Promise<void> {
    return this.#client.send(bytes);
  }

  get closed(): boolean {
    return this.#client.closedReason !== undefined;
  }

  get peerCredentials(): PeerCredentials {
    return this.#client.serverCredentials;
  }

  close(): void {
    this.#client.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    while (true) {
      let message: AlpcMessage;
      try {
        message = await this.#client.receive();
      } catch (error) {
        if (error instanceof PortClosedError) return;
        throw error;
      }
      yield copyOut(message);
    }
  }
}

function copyOut(message: AlpcMessage): Uint8Array {
  const bytes = message.data.slice();
  message.release();
  return bytes;
}

// The server's end of one client: datagrams from the server's one event loop.
class ServerStream implements RpcStream {
  readonly #connection: AlpcConnection;
  readonly #queue: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(connection: AlpcConnection) {
    this.#connection = connection;
  }

  push(message: AlpcMessage): void {
    this.#queue.push(copyOut(message));
    this.#poke();
  }

  end(): void {
    this.#ended = true;
    this.#poke();
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  send(bytes: Uint8Array): Promise<void> {
    return this.#connection.send(bytes);
  }

  get closed(): boolean {
    return this.#ended || this.#connection.closedReason !== undefined;
  }

  get peerCredentials(): PeerCredentials {
    return this.#connection.credentials;
  }

  close(): void {
    this.end();
    this.#connection.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    while (true) {
      const frame = this.#queue.shift();
      if (frame !== undefined) {
        yield frame;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }
}

/** An RPC server's ALPC connection port: accepts clients up to `maxConnections`. */
export class AlpcRpcListener implements RpcListener {
  readonly #server: AlpcServer;
  readonly #maxConnections: number;

  constructor(
    name: string,
    options: { maxConnections: number; replySectionSize?: number; mode?: number },
  ) {
    this.#server = AlpcServer.create(name, {
      replySectionSize: options.replySectionSize,
      mode: options.mode,
    });
    this.#maxConnections = options.maxConnections;
  }

  get address(): AlpcRpcAddress {
    return { transport: "alpc", name: this.#server.name };
  }

  get released(): Promise<void> {
    return this.#server.released;
  }

  async serve(
    handler: (connection: RpcStream) => Promise<void> | void,
    onError: (error: unknown) => void,
  ): Promise<void> {
    const streams = new Map<AlpcConnection, ServerStream>();
    const running = new Set<Promise<void>>();
    for await (const event of this.#server) {
      if (event.type === "connect") {
        if (streams.size >= this.#maxConnections) {
          await event.request.reject(
            `it already serves ${this.#maxConnections} clients (maxConnections)`,
          );
          continue;
        }
        let connection: AlpcConnection;
        try {
          connection = await event.request.accept();
        } catch (error) {
          onError(error);
          continue;
        }
        const stream = new ServerStream(connection);
        streams.set(connection, stream);
        const task = (async () => {
          try {
            await handler(stream);
          } catch (error) {
            try {
              onError(error);
            } catch { /* a failing error handler must not take the server down */ }
          } finally {
            stream.close();
            streams.delete(connection);
          }
        })();
        running.add(task);
        task.finally(() => running.delete(task));
      } else if (event.type === "datagram") {
        streams.get(event.connection)?.push(event.message);
      } else if (event.type === "request") {
        await event.message.fail("RPC over ALPC takes datagrams").catch(() => {});
      } else {
        streams.get(event.connection)?.end();
      }
    }
    for (const stream of streams.values()) stream.end();
    await Promise.all(running);
  }

  close(): void {
    this.#server.close();
  }
}

// RPC carried by ALPC: the RPC protocol's frames (lib/rpc.ts) travel as ALPC datagrams,
// each by the path its size calls for, so that large arguments and results go through
// the channel's sections (or are read in place) while the stubs and errors stay those of
// RPC over sockets. Received payloads are copied out and their section space released at
// once: RPC decodes them anyway. The limits of RPC over sockets hold here too:
// `maxFrameSize` bounds what is sent and accepted, and frames a connection's handler has
// not taken yet count in its channel's backlog, so a client that stops reading its
// replies stops being read.
import {
  type AlpcClient,
  type AlpcConnection,
  type AlpcMessage,
  AlpcServer,
  PortClosedError,
} from "./alpc.ts";
import type { PeerCredentials } from "./_unix_socket.ts";
import { FrameTooLargeError } from "./socket.ts";

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
  readonly #maxFrameSize: number;

  constructor(client: AlpcClient, maxFrameSize: number) {
    this.#client = client;
    this.#maxFrameSize = maxFrameSize;
  }

  send(bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.#maxFrameSize) {
      return Promise.reject(new FrameTooLargeError(bytes.length, this.#maxFrameSize, false));
    }
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
      yield copyOut(message, this.#maxFrameSize);
    }
  }
}

function copyOut(message: AlpcMessage, maxFrameSize: number): Uint8Array {
  const size = message.data.length;
  if (size > maxFrameSize) {
    message.release();
    throw new FrameTooLargeError(size, maxFrameSize, true);
  }
  const bytes = message.data.slice();
  message.release();
  return bytes;
}

// The server's end of one client: datagrams from the server's one event loop.
class ServerStream implements RpcStream {
  readonly #connection: AlpcConnection;
  readonly #maxFrameSize: number;
  // A frame (or why the client is dropped: a frame over maxFrameSize), with the message
  // it came in, counted in the channel's backlog until the handler takes the frame.
  readonly #queue: { frame: Uint8Array | FrameTooLargeError; message: AlpcMessage }[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  constructor(connection: AlpcConnection, maxFrameSize: number) {
    this.#connection = connection;
    this.#maxFrameSize = maxFrameSize;
  }

  push(message: AlpcMessage): void {
    let frame: Uint8Array | FrameTooLargeError;
    try {
      frame = copyOut(message, this.#maxFrameSize);
    } catch (error) {
      frame = error as FrameTooLargeError;
    }
    this.#connection._channel.hold(message);
    this.#queue.push({ frame, message });
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
      const entry = this.#queue.shift();
      if (entry !== undefined) {
        const { frame, message } = entry;
        this.#connection._channel.taken(message);
        if (frame instanceof FrameTooLargeError) throw frame;
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
  readonly #maxFrameSize: number;

  constructor(
    name: string,
    options: {
      maxConnections: number;
      maxFrameSize: number;
      replySectionSize?: number;
      mode?: number;
    },
  ) {
    this.#server = AlpcServer.create(name, {
      replySectionSize: options.replySectionSize,
      mode: options.mode,
      maxMessageSize: options.maxFrameSize,
    });
    this.#maxConnections = options.maxConnections;
    this.#maxFrameSize = options.maxFrameSize;
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
          ).catch(() => {}); // the server closed meanwhile: the close refused it
          continue;
        }
        let connection: AlpcConnection;
        try {
          connection = await event.request.accept();
        } catch (error) {
          onError(error);
          continue;
        }
        const stream = new ServerStream(connection, this.#maxFrameSize);
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

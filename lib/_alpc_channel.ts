// One ALPC channel: the pair of private communication ports between a server and one
// client (a connected Unix stream socket nobody else can name), the same on both sides.
// It picks each message's path by size, matches replies to requests by id, runs
// callbacks tagged with a request this side waits on, and on close or death fails
// everything in flight and unmaps the sections.
import { ERRNO } from "../ffi/constants.ts";
import { CorruptedError, ErrnoError, PermissionDeniedError, timedOutError } from "../ffi/errno.ts";
import {
  AlpcRemoteError,
  type CloseReason,
  errorText,
  MAX_ERROR_TEXT,
  PortClosedError,
  toPayload,
  validateSectionFull,
} from "./_alpc_errors.ts";

export {
  AlpcRemoteError,
  type CloseReason,
  errorText,
  MAX_ERROR_TEXT,
  PortClosedError,
  toPayload,
  validateSectionFull,
} from "./_alpc_errors.ts";
import {
  type AlpcPath,
  decodeHeader,
  encodeFrame,
  FLAG_FOR_REPLY,
  FLAG_WRITTEN,
  type Header,
  HEADER_SIZE,
  KIND,
  makeHeader,
  PATH_CODE,
  pathName,
} from "./_alpc_wire.ts";
import type { OwnSection, PeerSection } from "./_alpc_section.ts";
import { pointerOf, readPeerMemory, writePeerMemory } from "./_alpc_vm.ts";
import type { FramedConnection } from "./socket.ts";
import type { PeerCredentials } from "./_unix_socket.ts";
import { validateWaitOptions, type WaitOptions, within } from "./_wait.ts";

/** How deep callbacks may nest (a callback of a callback of ... a request). */
export const MAX_CALLBACK_DEPTH = 8;

/**
 * Messages of one channel delivered but not yet taken by the application (or callbacks
 * still running) before its reader stops reading: a peer that sends faster than this
 * side consumes then waits on the socket (its sends time out) instead of growing memory.
 */
export const MAX_BACKLOG = 1024;

/** What a handler may return as a reply. */
export type AlpcReplyData = Uint8Array | string | void;
/** Handles a request (or a callback); its result is the reply. */
export type AlpcHandler = (message: AlpcMessage) => AlpcReplyData | Promise<AlpcReplyData>;

/** Options of a request: waiting, callbacks, and a full section. */
export interface AlpcSendOptions extends WaitOptions {
  /** Runs callbacks the peer sends while this request waits (default: the port's). */
  onCallback?: AlpcHandler;
  /**
   * When the section has no room: `"wait"` (default) for the peer to release space
   * (bounded by timeout and signal), or `"fail"` with a `SectionFullError` at once.
   */
  sectionFull?: "wait" | "fail";
  /**
   * For a request: a buffer the peer may write a large reply into directly
   * (process_vm_writev: the textbook's "the server writes in the client's address
   * space") instead of pinning the reply for this side to read. The reply's `data` is
   * then a view of it. Leave it untouched until the reply arrives: after a timeout or
   * an abort the peer may still write a late reply into it, until the channel closes.
   */
  replyBuffer?: Uint8Array;
}

const decoder = new TextDecoder();
interface Pending {
  resolve(message: AlpcMessage): void;
  reject(error: unknown): void;
  onCallback: AlpcHandler | undefined;
  depth: number;
  replyBuffer: Uint8Array | undefined;
}

/** How long a send that found the peer gone waits for the reader to learn why. */
const PEER_GONE_GRACE_MS = 100;

interface SendFields {
  id: number;
  callbackOf?: number;
  depth?: number;
  /** A reply: where the requester lets it be written in place. */
  replyTo?: { address: bigint; capacity: number };
}

/** What a channel is made of (see alpc.ts for how it is negotiated). */
export interface ChannelParts {
  connection: FramedConnection;
  peer: PeerCredentials;
  name: string;
  inlineLimit: number;
  maxMessageSize: number;
  ownSection: OwnSection | undefined;
  peerSection: PeerSection | undefined;
  onCallback: AlpcHandler | undefined;
  deliver(message: AlpcMessage): void;
  ended(reason: CloseReason, error: unknown): void;
  /** Trace hook: each message received, with its path. */
  trace?: (message: AlpcMessage) => void;
}

/**
 * A message received on an ALPC port: a request (reply with {@link AlpcMessage.reply}),
 * a datagram, or a reply. `path` says how its payload came: `"inline"` in the message,
 * `"section"` in the sender's section (`data` is a view of it, valid until
 * {@link AlpcMessage.release}: copy what you keep), or `"vm"` read from the sender's
 * memory with process_vm_readv.
 */
export class AlpcMessage implements Disposable {
  /** The sender's message id (a reply carries its request's id). */
  readonly id: number;
  /** `"request"`, `"datagram"` or `"reply"`. */
  readonly kind: "request" | "datagram" | "reply";
  /** How the payload travelled. */
  readonly path: AlpcPath;
  /** For a callback: the id of the request of this side it was sent for; else 0. */
  readonly callbackOf: number;
  /** Callback nesting depth: 0 for a plain request. */
  readonly depth: number;
  /** The payload. A section's view is detached by `release()` (or when the port closes). */
  readonly data: Uint8Array;
  readonly #channel: Channel;
  readonly #replyTo: { address: bigint; capacity: number };
  #released = false;
  #replied = false;

  /** @internal */
  constructor(
    channel: Channel,
    header: Header,
    kind: AlpcMessage["kind"],
    path: AlpcPath,
    data: Uint8Array,
  ) {
    if (!(channel instanceof Channel)) {
      throw new TypeError("Invalid channel: AlpcMessage objects are made by ALPC ports only");
    }
    this.#channel = channel;
    this.id = header.id;
    this.kind = kind;
    this.path = path;
    this.callbackOf = header.callbackOf;
    this.depth = header.depth;
    this.data = data;
    this.inPlaceBytes = path === "vm" && (header.flags & FLAG_WRITTEN) === 0 ? data.length : 0;
    this.#replyTo = { address: header.replyAddress, capacity: header.replyCapacity };
  }

  /** The payload as UTF-8 text. */
  text(): string {
    return decoder.decode(this.data);
  }

  /** Releases the payload's section space to the sender (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#channel.releasePayload(this);
  }

  /** Same as `release()`. */
  [Symbol.dispose](): void {
    this.release();
  }

  /**
   * Replies to this request (once), by the path its size calls for; then releases it.
   * The reply may be this message's own `data`.
   */
  async reply(data: Uint8Array | string, options?: AlpcSendOptions): Promise<void> {
    if (this.kind !== "request") throw new TypeError(`Cannot reply to a ${this.kind}`);
    if (this.#replied) throw new TypeError(`Request ${this.id} was already answered`);
    // Arguments first: a bad one must leave the request answerable.
    const payload = toPayload(data, "reply");
    validateWaitOptions(options);
    validateSectionFull(options);
    this.#replied = true;
    // Released after the send: the reply may be this message's own section view.
    try {
      await this.#channel.send(KIND.reply, payload, {
        id: this.id,
        replyTo: this.#replyTo,
      }, options);
    } finally {
      this.release();
    }
  }

  /** Answers this request with an error: the requester gets an `AlpcRemoteError`. */
  async fail(error: unknown): Promise<void> {
    if (this.kind !== "request" || this.#replied) return;
    this.#replied = true;
    this.release();
    const text = error instanceof Error ? error.message : String(error);
    await this.#channel.send(KIND.errorReply, errorText(text), { id: this.id });
  }

  /**
   * Sends a callback request to the peer tagged with this request's id and waits for its
   * reply: the peer's call waiting for this request runs its handler for it. Nests up to
   * `MAX_CALLBACK_DEPTH`.
   */
  callback(data: Uint8Array | string, options?: AlpcSendOptions): Promise<AlpcMessage> {
    if (this.kind !== "request") {
      return Promise.reject(new TypeError(`Cannot call back on a ${this.kind}`));
    }
    const onCallback = options?.onCallback ?? this.handler;
    return this.#channel.request(
      toPayload(data),
      { ...options, onCallback },
      this.id,
      this.depth + 1,
    );
  }

  /** @internal Bytes this side allocated to read the payload in place (else 0). */
  readonly inPlaceBytes: number;

  /** @internal The handler running this callback: nested callbacks default to it. */
  handler: AlpcHandler | undefined;

  /** @internal */
  get replied(): boolean {
    return this.#replied;
  }
}

/** The symmetric core of a port. */
export class Channel {
  readonly #parts: ChannelParts;
  readonly #pending = new Map<number, Pending>();
  // Buffers the peer reads in place (vm path), by message id, until it says it is done.
  readonly #pinnedSends = new Map<number, { data: Uint8Array; done: () => void }>();
  readonly #pinnedReplies = new Map<number, { data: Uint8Array; done: () => void }>();
  #nextId = 1;
  #wrapped = false;
  #closed: CloseReason | undefined;
  #closeError: unknown;
  #goodbye = false;
  #backlog = 0;
  readonly #ended = Promise.withResolvers<void>();
  #inPlaceBytes = 0;
  #room: (() => void) | undefined;

  constructor(parts: ChannelParts) {
    this.#parts = parts;
    this.#read();
  }

  get name(): string {
    return this.#parts.name;
  }

  get closedReason(): CloseReason | undefined {
    return this.#closed;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /** Resolves once closed and no send of the channel still waits on the thread pool. */
  get released(): Promise<void> {
    return this.#parts.connection.released;
  }

  get peer(): PeerCredentials {
    return this.#parts.peer;
  }

  #assertOpen(operation: string): void {
    if (this.#closed) {
      throw new PortClosedError(this.#closed, this.name, operation, this.#closeError);
    }
  }

  #newId(): number {
    const id = this.#nextId;
    if (this.#nextId >= 0xffff_ffff) {
      this.#nextId = 1;
      this.#wrapped = true;
    } else this.#nextId++;
    return id;
  }

  // Whether this side ever sent a message with `id` (a reply to it may come late).
  #issued(id: number): boolean {
    return this.#wrapped || (id >= 1 && id < this.#nextId);
  }

  /** Sends a request and waits for the reply with its id. */
  async request(
    data: Uint8Array,
    options: AlpcSendOptions | undefined,
    callbackOf = 0,
    depth = 0,
  ): Promise<AlpcMessage> {
    const wait = validateWaitOptions(options);
    validateSectionFull(options);
    if (options?.onCallback !== undefined && typeof options.onCallback !== "function") {
      throw new TypeError("Invalid onCallback: expected a function");
    }
    if (depth > MAX_CALLBACK_DEPTH) {
      throw new RangeError(
        `Callbacks nest at most ${MAX_CALLBACK_DEPTH} deep (MAX_CALLBACK_DEPTH): refusing depth ${depth}`,
      );
    }
    this.#assertOpen("send a request on");
    wait.signal?.throwIfAborted(); // given up before asking: nothing goes out
    const id = this.#newId();
    const reply = Promise.withResolvers<AlpcMessage>();
    this.#pending.set(id, {
      resolve: reply.resolve,
      reject: reply.reject,
      onCallback: options?.onCallback,
      depth,
      replyBuffer: options?.replyBuffer,
    });
    try {
      // Not awaited before waiting: a send that fails fails the request.
      this.send(KIND.request, data, { id, callbackOf, depth }, options).catch(reply.reject);
      return await within(
        reply.promise,
        wait,
        (ms) => timedOutError("wait for the reply on", "ALPC port", this.name, ms),
      );
    } catch (error) {
      this.#pending.delete(id);
      throw error;
    }
  }

  /** Sends a datagram (no reply). Resolves once the peer can no longer need `data`. */
  datagram(data: Uint8Array, options?: AlpcSendOptions): Promise<void> {
    const wait = validateWaitOptions(options);
    validateSectionFull(options);
    this.#assertOpen("send a datagram on");
    wait.signal?.throwIfAborted();
    return this.send(KIND.datagram, data, { id: this.#newId() }, options);
  }

  /**
   * Sends a message by the path its size calls for. On the vm path the promise settles
   * when the peer has read `data` (it must not change until then), or the channel ends.
   * A peer that closed or died before this side's reader noticed is a `PortClosedError`
   * too (with the reason the reader then finds), not the socket's broken pipe.
   */
  async send(
    kind: number,
    data: Uint8Array,
    fields: SendFields,
    options?: AlpcSendOptions,
  ): Promise<void> {
    try {
      return await this.#send(kind, data, fields, options);
    } catch (error) {
      const gone = error instanceof ErrnoError &&
        (error.errno === ERRNO.EPIPE || error.errno === ERRNO.ECONNRESET);
      if (!gone) throw error;
      // What is left in the socket (a goodbye, then the end) tells why: let the reader
      // get there first.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#ended.promise,
        new Promise((resolve) => timer = setTimeout(resolve, PEER_GONE_GRACE_MS)),
      ]);
      clearTimeout(timer);
      throw new PortClosedError(this.#closed ?? "peer-died", this.name, "send on", error);
    }
  }

  async #send(
    kind: number,
    data: Uint8Array,
    fields: SendFields,
    options?: AlpcSendOptions,
  ): Promise<void> {
    this.#assertOpen("send on");
    const { inlineLimit, ownSection, connection } = this.#parts;
    const header = makeHeader({
      kind,
      depth: fields.depth ?? 0,
      id: fields.id,
      callbackOf: fields.callbackOf ?? 0,
      length: data.length,
    });
    const replyBuffer = kind === KIND.request ? options?.replyBuffer : undefined;
    if (replyBuffer !== undefined) {
      if (!(replyBuffer instanceof Uint8Array)) {
        throw new TypeError("Invalid replyBuffer: expected a Uint8Array");
      }
      header.replyAddress = pointerOf(replyBuffer);
      header.replyCapacity = Math.min(replyBuffer.length, 0xffff_ffff);
    }
    if (data.length > 0xffff_ffff) {
      throw new RangeError(`Message of ${data.length} bytes is too large`);
    }
    // A peer that does not read fills the socket: the wait for room is bounded too. A
    // frame given up on stays queued whole (cutting it would end the stream): it may
    // still be delivered.
    const wait = { timeout: options?.timeout, signal: options?.signal };
    const put = (frame: Uint8Array) =>
      within(
        connection.send(frame),
        wait,
        (ms) => timedOutError("send on", "ALPC port", this.name, ms),
      );
    if (data.length <= inlineLimit || kind === KIND.errorReply) {
      await put(encodeFrame(header, data));
      return;
    }
    if (ownSection !== undefined && data.length <= ownSection.size) {
      const sectionFull = options?.sectionFull ?? "wait";
      if (sectionFull !== "wait" && sectionFull !== "fail") {
        throw new TypeError(`Invalid sectionFull: expected "wait" or "fail"`);
      }
      let offset: number;
      try {
        offset = await ownSection.allocate(data.length, sectionFull === "wait", {
          timeout: options?.timeout,
          signal: options?.signal,
        });
      } catch (error) {
        // The channel ended while this waited for room: say so, as every send does.
        this.#assertOpen("send on");
        throw error;
      }
      this.#assertOpen("send on");
      ownSection.write(offset, data);
      header.path = PATH_CODE.section;
      header.offset = offset;
      await put(encodeFrame(header));
      return;
    }
    header.path = PATH_CODE.vm;
    const replyTo = fields.replyTo;
    if (
      kind === KIND.reply && replyTo && replyTo.address !== 0n && data.length <= replyTo.capacity
    ) {
      // The requester lent a buffer: write the reply into it in place.
      let written = true;
      try {
        await writePeerMemory(this.#parts.peer, replyTo.address, data, this.name);
      } catch (error) {
        // Not allowed to write there (see assertPeerUnchanged): the requester reads the
        // reply itself, with its own rights, as if it had lent no buffer.
        if (!(error instanceof PermissionDeniedError)) throw error;
        written = false;
      }
      if (written) {
        header.flags = FLAG_WRITTEN;
        await put(encodeFrame(header));
        return;
      }
    }
    // Too large for the section (or no section): the peer reads it in place.
    header.address = pointerOf(data);
    const pins = kind === KIND.reply ? this.#pinnedReplies : this.#pinnedSends;
    const done = Promise.withResolvers<void>();
    const id = fields.id;
    pins.set(id, {
      data,
      done: () => {
        pins.delete(id);
        done.resolve();
      },
    });
    // The wait is bounded like any other; the pin is not: it outlives a timeout (the
    // frame stays queued) until the peer says it has read the buffer or the channel ends.
    await within(
      connection.send(encodeFrame(header)).then(() => done.promise),
      wait,
      (ms) => timedOutError("send on", "ALPC port", this.name, ms),
    );
    this.#assertOpen("send on");
  }

  async #read(): Promise<void> {
    const { connection } = this.#parts;
    let error: unknown;
    try {
      while (true) {
        const frame = await connection.receive();
        if (frame === null) break;
        // Only the in-place path waits (for the copy): the others are handled at once.
        const handling = this.#handle(frame);
        if (handling !== undefined) await handling;
        if (this.#closed) return;
        // Messages not taken yet stop the reader: MAX_BACKLOG of them, or in-place
        // payloads (allocated here, of the peer's chosen size) over maxMessageSize.
        while (
          (this.#backlog >= MAX_BACKLOG || this.#inPlaceBytes > this.#parts.maxMessageSize) &&
          !this.#closed
        ) {
          await new Promise<void>((resolve) => this.#room = resolve);
        }
        if (this.#closed) return;
      }
    } catch (caught) {
      error = caught;
    }
    if (this.#closed) return;
    const reason = this.#goodbye ? "port-closed" : "peer-died";
    this.#end(reason, error);
  }

  #handle(frame: Uint8Array): Promise<void> | undefined {
    const header = decodeHeader(frame, this.name);
    switch (header.kind) {
      case KIND.free:
        if (!this.#parts.ownSection?.free(header.offset)) {
          throw CorruptedError.of(
            "ALPC port",
            this.name,
            "released section offset",
            String(header.offset),
          );
        }
        return undefined;
      case KIND.vmDone: {
        const pins = (header.flags & FLAG_FOR_REPLY) !== 0
          ? this.#pinnedReplies
          : this.#pinnedSends;
        pins.get(header.id)?.done();
        return undefined;
      }
      case KIND.goodbye:
        this.#goodbye = true;
        return undefined;
      case KIND.errorReply: {
        const pending = this.#takePending(header.id);
        const text = decoder.decode(frame.subarray(HEADER_SIZE, HEADER_SIZE + MAX_ERROR_TEXT));
        pending?.reject(new AlpcRemoteError(text));
        return undefined;
      }
      case KIND.request:
      case KIND.datagram:
      case KIND.reply:
        break;
      default:
        throw CorruptedError.of("ALPC port", this.name, "message kind", String(header.kind));
    }
    const kind = header.kind === KIND.request
      ? "request"
      : header.kind === KIND.datagram
      ? "datagram"
      : "reply";
    // A reply to a request given up may come any time later (however many were given
    // up since): only an id this side never used is the peer's invention.
    if (kind === "reply" && !this.#pending.has(header.id) && !this.#issued(header.id)) {
      throw CorruptedError.of(
        "ALPC port",
        this.name,
        "reply id",
        `${header.id} (no request of that id was made)`,
      );
    }
    const path = pathName(header.path, this.name);
    if (kind === "reply" && path === "vm" && !this.#pending.has(header.id)) {
      // Late and in place: nobody wants it. One pinned in the peer is let go unread (the
      // other paths are dropped by #dispatch, their section space given back).
      if ((header.flags & FLAG_WRITTEN) === 0) {
        this.#parts.connection.send(
          encodeFrame({ ...header, kind: KIND.vmDone, flags: FLAG_FOR_REPLY, length: 0 }),
        ).catch(() => {});
      }
      return undefined;
    }
    if (path === "vm" && (header.flags & FLAG_WRITTEN) !== 0) {
      // Written into the buffer this side lent with the request: check it fits.
      const lent = kind === "reply" ? this.#pending.get(header.id)?.replyBuffer : undefined;
      if (lent === undefined || header.length > lent.length) {
        throw CorruptedError.of(
          "ALPC port",
          this.name,
          "written reply",
          `of ${header.length} bytes (no lent buffer that large)`,
        );
      }
      this.#dispatch(new AlpcMessage(this, header, kind, path, lent.subarray(0, header.length)));
      return undefined;
    }
    if (path === "vm") {
      return this.#readInPlace(header).then(
        (data) => this.#dispatch(new AlpcMessage(this, header, kind, path, data)),
        (error) => this.#inPlaceFailed(header, error),
      );
    }
    this.#dispatch(new AlpcMessage(this, header, kind, path, this.#payload(frame, header)));
    return undefined;
  }

  #dispatch(message: AlpcMessage): void {
    const { kind } = message;
    try {
      this.#parts.trace?.(message);
    } catch { /* a failing trace hook must not end the channel */ }
    if (kind === "reply") {
      const pending = this.#takePending(message.id);
      if (pending) pending.resolve(message);
      else message.release(); // a late reply to a request given up
      return;
    }
    if (kind === "request" && message.callbackOf !== 0) {
      this.#runCallback(message);
      return;
    }
    this.hold(message);
    this.#parts.deliver(message);
  }

  #takePending(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    return pending;
  }

  // A callback is handled by whoever waits for the request it is tagged with.
  #runCallback(message: AlpcMessage): void {
    const waiting = this.#pending.get(message.callbackOf);
    const handler = waiting?.onCallback ?? this.#parts.onCallback;
    // Counted as a message only: a handler may wait for replies this reader must read,
    // so its in-place bytes must not stop the reader.
    this.#backlog++;
    (async () => {
      try {
        if (waiting === undefined) {
          throw new Error(
            `callback tagged with request ${message.callbackOf}, which does not wait`,
          );
        }
        if (message.depth > MAX_CALLBACK_DEPTH) {
          throw new Error(
            `callback depth ${message.depth} is over MAX_CALLBACK_DEPTH ${MAX_CALLBACK_DEPTH}`,
          );
        }
        if (handler === undefined) throw new Error("the waiting call has no callback handler");
        message.handler = handler;
        const result = await handler(message);
        if (!message.replied) await message.reply(result === undefined ? new Uint8Array() : result);
      } catch (error) {
        if (!this.#closed) await message.fail(error).catch(() => {});
      } finally {
        this.#backlog--;
        this.taken();
      }
    })();
  }

  // The payload by its path, every field checked first.
  #payload(frame: Uint8Array, header: Header): Uint8Array {
    const { length } = header;
    switch (header.path) {
      case PATH_CODE.inline:
        if (length !== frame.length - HEADER_SIZE || length > this.#parts.inlineLimit) {
          throw CorruptedError.of("ALPC port", this.name, "inline length", String(length));
        }
        return frame.slice(HEADER_SIZE);
      case PATH_CODE.section: {
        const section = this.#parts.peerSection;
        if (section === undefined) {
          throw CorruptedError.of(
            "ALPC port",
            this.name,
            "section reference",
            "(no section was set up)",
          );
        }
        const view = section.view(header.offset, length);
        this.#offsets.set(view.buffer, header.offset);
        return view;
      }
      default:
        throw CorruptedError.of("ALPC port", this.name, "path code", String(header.path));
    }
  }

  // The in-place path: the peer's pinned buffer, copied with process_vm_readv; then the
  // peer is told it may let the buffer go.
  async #readInPlace(header: Header): Promise<Uint8Array> {
    const { length } = header;
    if (length > this.#parts.maxMessageSize) {
      throw CorruptedError.of(
        "ALPC port",
        this.name,
        "message length",
        `${length} (over maxMessageSize ${this.#parts.maxMessageSize})`,
      );
    }
    const data = new Uint8Array(length);
    await readPeerMemory(this.#parts.peer, header.address, data, this.name);
    const flags = header.kind === KIND.reply ? FLAG_FOR_REPLY : 0;
    await this.#parts.connection.send(
      encodeFrame({ ...header, kind: KIND.vmDone, flags, length: 0 }),
    );
    return data;
  }

  // A request the kernel would not let this side read (EPERM: ptrace rules) is answered
  // with that error, which names the remedy, and the channel goes on; anything else
  // (a bad address, a message too large) ends the channel.
  async #inPlaceFailed(header: Header, error: unknown): Promise<void> {
    if (!(error instanceof PermissionDeniedError) || header.kind !== KIND.request) throw error;
    await this.#parts.connection.send(encodeFrame(makeHeader({ ...header, kind: KIND.vmDone })));
    await this.send(KIND.errorReply, errorText(error.message), { id: header.id });
  }

  /** @internal Counts a message as not taken yet (delivered, or held on by RPC). */
  hold(message: AlpcMessage): void {
    this.#backlog++;
    this.#inPlaceBytes += message.inPlaceBytes;
  }

  /**
   * A delivered message was taken by the application (uncounted); without one, only
   * wakes the reader to look again: the reader may go on.
   */
  taken(message?: AlpcMessage): void {
    if (message !== undefined) {
      this.#backlog--;
      this.#inPlaceBytes -= message.inPlaceBytes;
    }
    const room = this.#room;
    this.#room = undefined;
    room?.();
  }

  /** @internal Gives a received section payload's space back to the sender. */
  releasePayload(message: AlpcMessage): void {
    if (message.path !== "section" || this.#closed) return;
    const data = message.data;
    const offset = this.#sectionOffset(data);
    this.#parts.peerSection?.release(data);
    this.#parts.connection.send(encodeFrame(makeHeader({ kind: KIND.free, offset })))
      .catch(() => {});
  }

  readonly #offsets = new WeakMap<ArrayBufferLike, number>();
  #sectionOffset(data: Uint8Array): number {
    return this.#offsets.get(data.buffer) ?? 0;
  }

  /** Closes the channel: says goodbye, fails what is in flight, unmaps the sections. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#parts.connection.send(encodeFrame(makeHeader({ kind: KIND.goodbye })))
        .catch(() => {});
    } catch { /* the connection is gone already */ }
    this.#end("closed", undefined);
  }

  #end(reason: CloseReason, error: unknown): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#closeError = error;
    const room = this.#room;
    this.#room = undefined;
    room?.();
    this.#parts.connection.close();
    // A peer that broke the protocol (a reply with a wrong id, a reference outside the
    // section): its requests in flight fail with what it did wrong.
    for (const [, pending] of this.#pending) {
      pending.reject(
        error instanceof CorruptedError
          ? error
          : new PortClosedError(reason, this.name, "wait for the reply on", error),
      );
    }
    this.#pending.clear();
    for (const pins of [this.#pinnedSends, this.#pinnedReplies]) {
      for (const [, pin] of pins) pin.done();
      pins.clear();
    }
    this.#parts.ownSection?.close();
    this.#parts.peerSection?.close();
    this.#parts.ended(reason, error);
    this.#ended.resolve();
  }
}

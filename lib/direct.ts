/**
 * Direct communication: processes name each other. `send(P, message)`,
 * `receiveFrom(Q)` (only Q's messages) and `receive()` (from anyone, telling who sent
 * it), over links established automatically, exactly one per pair of processes.
 *
 * @module
 */
import { ERRNO } from "../ffi/constants.ts";
import { AlreadyExistsError, closedError, NotFoundError } from "../ffi/errno.ts";
import { FutexFlag, futexWaitable } from "./_futex.ts";
import { openLayout } from "./_layout.ts";
import { Attachment, withLife, writeIdentity } from "./_lifecycle.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  encodeSenderName,
  type MailboxCapacity,
  type MailboxMessage,
  type StoreCreateOptions,
  validateStoreOptions,
} from "./_mailbox_message.ts";
import { MailboxStore } from "./_mailbox_store.ts";
import { currentPid, processExists } from "./_process.ts";
import { step } from "./_steps.ts";
import { describe, validateOptions } from "./_validate.ts";
import { untilDefined, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";
import { SharedMemory } from "./shared_memory.ts";

/** Options of {@link DirectEndpoint.open}. */
export interface DirectEndpointOptions {
  /** This process's name: 1 to 40 characters from `A-Z a-z 0-9 _ -`. */
  name: string;
  /** Names are unique within a namespace (same characters). Default: `"default"`. */
  namespace?: string;
  /**
   * Capacity of the links this endpoint establishes (0, n or `"unbounded"`, as for a
   * {@link Mailbox}). A link keeps the capacity of whoever established it. Default: 16.
   */
  capacity?: MailboxCapacity;
  /** Largest message on links this endpoint establishes. Default: 4096. */
  maxMessageSize?: number;
  /** Permission bits of the objects created, subject to the umask. Default: `0o600`. */
  mode?: number;
}

const WHAT = "direct endpoint";
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;
const PREFIX = "/deno-ipc-dc";

const MAGIC = 0x44_49_52_43; // "DIRC"
const VERSION = 3;
const I_MAGIC = 0;
const I_VERSION = 1;
const I_OWNER = 2; // pid of the process that has the endpoint open; 0 when none
const I_LIFE = 3; // byte offset of the identity block (lib/_lifecycle.ts); 0 in older ones
const I_PEER_COUNT = 18; // slots claimed in the peer table (may pass MAX_PEERS briefly)
const I_ANY_WAITING = 32; // futex flag: the owner waits in receive() from anyone
const I_ARRIVALS = 48; // bumped on every message sent to the owner, and on new peers
const TABLE_OFFSET = 256;
const SLOT_BYTES = 64;
/** Most peers that can establish a link to one endpoint. */
const MAX_PEERS = 256;
const REGISTRY_BYTES = TABLE_OFFSET + MAX_PEERS * SLOT_BYTES;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function validateName(value: unknown, what: string): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${what} ${
        typeof value === "string" ? JSON.stringify(value) : `(${describe(value)})`
      }: expected 1 to 40 characters from ` +
        `A-Z a-z 0-9 _ -`,
    );
  }
  return value;
}

function registryName(namespace: string, name: string): string {
  return `${PREFIX}.${namespace}.${name}`;
}

function linkName(namespace: string, from: string, to: string): string {
  return `${PREFIX}.${namespace}.${from}.${to}`;
}

// An endpoint's registry: who owns it, which peers have links to it, and the word its
// owner sleeps on in receive() from anyone.
class Registry {
  readonly shm: SharedMemory;
  readonly words: Int32Array;
  readonly bytes: Uint8Array;
  readonly anyWaiting: FutexFlag;
  readonly #attachment: Attachment;

  constructor(shm: SharedMemory) {
    this.shm = shm;
    this.words = shm.view(Int32Array, 0, TABLE_OFFSET / 4);
    try {
      this.#attachment = Attachment.attach(shm, this.words[I_LIFE], WHAT);
    } catch (error) {
      shm.close();
      throw error;
    }
    this.bytes = shm.view(Uint8Array, 0, REGISTRY_BYTES);
    this.anyWaiting = new FutexFlag(
      this.words,
      I_ANY_WAITING,
      shm.unsafePointer(I_ANY_WAITING * 4),
    );
  }

  /** Detaches this process and unmaps the registry. */
  close(): void {
    this.#attachment.detach();
    this.shm.close();
  }

  static openExisting(name: string): Registry {
    return new Registry(openLayout({ name }, WHAT, (shm) =>
      shm.size >= REGISTRY_BYTES &&
      Atomics.load(shm.view(Int32Array, 0, 4), I_MAGIC) === MAGIC &&
      shm.view(Int32Array, 0, 4)[I_VERSION] === VERSION));
  }

  static openOrCreate(name: string, mode: number): Registry {
    try {
      const shm = SharedMemory.create({
        name,
        size: withLife(REGISTRY_BYTES),
        mode,
        initialize: (shm) => {
          const words = shm.view(Int32Array, 0, 4);
          words[I_MAGIC] = MAGIC;
          words[I_VERSION] = VERSION;
          words[I_LIFE] = writeIdentity(shm, "direct-registry");
        },
      });
      return new Registry(shm);
    } catch (error) {
      if (!(error instanceof AlreadyExistsError)) throw error;
      return Registry.openExisting(name);
    }
  }

  /** Slots of the peer table that were claimed (some may not be written yet). */
  get peerCount(): number {
    return Math.min(Math.max(Atomics.load(this.words, I_PEER_COUNT), 0), MAX_PEERS);
  }

  /**
   * The name in slot `index`: undefined while its writer has not published it (one
   * killed meanwhile leaves it so for good), null when it is not a valid name.
   */
  peer(index: number): string | null | undefined {
    const at = TABLE_OFFSET + index * SLOT_BYTES;
    const length = Atomics.load(this.bytes, at);
    if (length === 0) return undefined;
    if (length >= SLOT_BYTES) return null;
    const name = decoder.decode(this.bytes.subarray(at + 1, at + 1 + length));
    return NAME_PATTERN.test(name) ? name : null;
  }

  // Adds `name` to the peer table unless it is there. Without a lock, so that a writer
  // that is stopped or killed holds up nobody: a slot is claimed by counting it, then
  // written, then published by its length byte. Two processes adding the same name at
  // once may both add it; readers ignore the second.
  register(name: string): void {
    for (let i = this.peerCount - 1; i >= 0; i--) if (this.peer(i) === name) return;
    const index = Atomics.add(this.words, I_PEER_COUNT, 1);
    if (index >= MAX_PEERS) {
      Atomics.sub(this.words, I_PEER_COUNT, 1);
      throw new RangeError(
        `Too many peers: ${MAX_PEERS} processes already have links to "${this.shm.name}"`,
      );
    }
    step("direct.register.claimed");
    const at = TABLE_OFFSET + index * SLOT_BYTES;
    const bytes = encoder.encode(name);
    this.bytes.set(bytes, at + 1);
    Atomics.store(this.bytes, at, bytes.length);
    this.notify();
  }

  notify(): void {
    Atomics.add(this.words, I_ARRIVALS, 1);
    this.anyWaiting.wake();
  }
}

/**
 * A process's endpoint for direct communication. Processes open endpoints by name
 * within a namespace, then name each other:
 *
 * - `send(peer, message)` sends to the process named `peer` (its endpoint must be
 *   open, or have been open: messages wait for it like letters);
 * - `receiveFrom(peer)` receives only `peer`'s messages;
 * - `receive()` receives from anyone, and `message.sender.name` says who.
 *
 * The first use between two processes establishes their link, exactly one per pair,
 * with one queue each way; only those two processes use it, so a third process cannot
 * receive what they send each other. Every link has the blocking, non-blocking and
 * timeout forms and the capacity kinds of a {@link Mailbox}. At capacity 0, `trySend`
 * succeeds when the peer is blocked in `receiveFrom(sender)` (a `receive()` from
 * anyone does not offer: it could not take two handed-over messages at once).
 *
 * `close()` releases this process's handles (the name can be opened again, e.g. by a
 * restarted process, and queued messages are kept); `unlink()` removes the endpoint
 * and every link it knows of.
 *
 * @example Two endpoints in one process, as two processes would use them
 * ```ts
 * import { DirectEndpoint } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const namespace = `doc${crypto.randomUUID().slice(0, 8)}`;
 * using p = DirectEndpoint.open({ name: "P", namespace });
 * using q = DirectEndpoint.open({ name: "Q", namespace });
 * try {
 *   await p.send("Q", "hello Q");
 *   const message = await q.receiveFrom("P", { timeout: 1000 });
 *   assert.equal(message.text(), "hello Q");
 *   await q.send("P", "hello P");
 *   const reply = await p.receive({ timeout: 1000 }); // from anyone
 *   assert.equal(reply.sender.name, "Q");
 * } finally {
 *   p.unlink();
 *   q.unlink();
 * }
 * ```
 */
export class DirectEndpoint implements Disposable {
  readonly #name: string;
  readonly #namespace: string;
  readonly #registry: Registry;
  readonly #lifetime: Lifetime;
  readonly #linkOptions: Omit<StoreCreateOptions, "name">;
  readonly #senderName: Uint8Array;
  readonly #outgoing = new Map<string, MailboxStore>();
  readonly #incoming = new Map<string, MailboxStore>();
  readonly #peerRegistries = new Map<string, Registry>();
  readonly #known: string[] = [];
  readonly #knownSet = new Set<string>();
  #scanned = 0; // peer table slots read so far
  #unwritten: number[] = []; // slots claimed but not yet written when read
  #next = 0;

  private constructor(
    name: string,
    namespace: string,
    registry: Registry,
    linkOptions: Omit<StoreCreateOptions, "name">,
  ) {
    this.#name = name;
    this.#namespace = namespace;
    this.#registry = registry;
    this.#linkOptions = linkOptions;
    this.#senderName = encodeSenderName(name);
    this.#lifetime = new Lifetime(() => {
      for (const store of [...this.#outgoing.values(), ...this.#incoming.values()]) store.close();
      for (const peer of this.#peerRegistries.values()) peer.close();
      registry.close();
    });
  }

  /**
   * Opens this process's endpoint `name` (creating it the first time). Throws
   * `AlreadyExistsError` while another live process (or this one) has it open.
   */
  static open(options: DirectEndpointOptions): DirectEndpoint {
    const checked = validateOptions<DirectEndpointOptions>(options, WHAT);
    const name = validateName(checked.name, `${WHAT} name`);
    const namespace = validateName(checked.namespace ?? "default", "namespace");
    const linkOptions = validateStoreOptions(
      {
        capacity: checked.capacity ?? 16,
        maxMessageSize: checked.maxMessageSize,
        mode: checked.mode,
      },
      "link",
    );
    const registry = Registry.openOrCreate(registryName(namespace, name), linkOptions.mode);
    const pid = currentPid();
    while (true) {
      const owner = Atomics.load(registry.words, I_OWNER);
      if (owner !== 0 && (owner === pid || processExists(owner))) {
        registry.close();
        throw new AlreadyExistsError(ERRNO.EEXIST, "open", {
          objectName: name,
          message: `Endpoint "${name}" in namespace "${namespace}" is already open in process ` +
            `${owner}`,
        });
      }
      if (Atomics.compareExchange(registry.words, I_OWNER, owner, pid) === owner) break;
    }
    return new DirectEndpoint(name, namespace, registry, linkOptions);
  }

  /** This process's name. */
  get name(): string {
    return this.#name;
  }

  /** The namespace the name belongs to. */
  get namespace(): string {
    return this.#namespace;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /** The peers this endpoint has links with (established by either side, known so far). */
  get peers(): string[] {
    this.#assertOpen("list the peers of");
    this.#refreshPeers();
    return [...new Set([...this.#known, ...this.#outgoing.keys(), ...this.#incoming.keys()])];
  }

  /** The capacity of the link with `peer`, establishing it if needed. */
  linkCapacity(peer: string): MailboxCapacity {
    this.#assertOpen("inspect a link of");
    return this.#outgoingTo(this.#checkPeer(peer)).capacity;
  }

  /**
   * Sends `message` to `peer` if that needs no waiting; `false` when the link is full, or
   * busy (another process has held its lock for about a millisecond). `NotFoundError`
   * when no endpoint `peer` exists in the namespace.
   */
  trySend(peer: string, message: Uint8Array | string): boolean {
    this.#assertOpen("send");
    const store = this.#outgoingTo(this.#checkPeer(peer));
    return store.trySend(store.prepare(message));
  }

  /** Sends `message` to `peer`, waiting for room (at capacity 0: until it is taken). */
  send(peer: string, message: Uint8Array | string, options?: WaitOptions): Promise<void> {
    try {
      this.#assertOpen("send");
      const store = this.#outgoingTo(this.#checkPeer(peer));
      return store.send(store.prepare(message), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Receives `peer`'s next message if there is one (`undefined` also when busy). */
  tryReceiveFrom(peer: string): MailboxMessage | undefined {
    this.#assertOpen("receive");
    return this.#incomingFrom(this.#checkPeer(peer)).tryReceive();
  }

  /** Receives `peer`'s next message, waiting for one; other senders' messages wait. */
  receiveFrom(peer: string, options?: WaitOptions): Promise<MailboxMessage> {
    try {
      this.#assertOpen("receive");
      return this.#incomingFrom(this.#checkPeer(peer)).receive(options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Receives the next message from anyone if there is one (links taken in turn;
   * `undefined` also when busy).
   */
  tryReceive(): MailboxMessage | undefined {
    this.#assertOpen("receive");
    return this.#attemptReceiveAny(true);
  }

  /** Receives the next message from anyone, waiting for one. */
  receive(options?: WaitOptions): Promise<MailboxMessage> {
    try {
      this.#assertOpen("receive");
      validateWaitOptions(options);
      const message = this.#attemptReceiveAny(false);
      if (message !== undefined) return Promise.resolve(message);
    } catch (error) {
      return Promise.reject(error);
    }
    const registry = this.#registry;
    let arrivals = Atomics.load(registry.words, I_ARRIVALS);
    return waitFor(
      futexWaitable({
        lifetime: this.#lifetime,
        operation: "receive",
        what: WHAT,
        name: this.#name,
        attempt: untilDefined(() => {
          arrivals = Atomics.load(registry.words, I_ARRIVALS);
          return this.#attemptReceiveAny(false);
        }),
        flag: registry.anyWaiting,
        ready: () =>
          Atomics.load(registry.words, I_ARRIVALS) !== arrivals ||
          [...this.#incoming.values()].some((store) => !store.closed && store.hasMessage()),
      }),
      options,
    );
  }

  /**
   * Releases this process's handles; the endpoint and its links stay. Idempotent. The
   * name is free again when this returns, even while a pending receive's last wait slice
   * still keeps the memory mapped.
   */
  close(): void {
    if (this.#lifetime.closed) return;
    Atomics.compareExchange(this.#registry.words, I_OWNER, currentPid(), 0);
    this.#lifetime.close();
  }

  /**
   * Removes the endpoint's name and deletes every link it knows of (peers then get
   * `QueueRemovedError` on them). Call `close()` as well, or use `using`.
   */
  unlink(): void {
    this.#assertOpen("unlink");
    this.#refreshPeers();
    const peers = new Set([...this.#known, ...this.#outgoing.keys(), ...this.#incoming.keys()]);
    for (const peer of peers) {
      for (const store of [this.#outgoing.get(peer), this.#incoming.get(peer)]) {
        if (store && !store.deleted) store.delete();
      }
      for (
        const name of [
          linkName(this.#namespace, this.#name, peer),
          linkName(this.#namespace, peer, this.#name),
        ]
      ) {
        try {
          MailboxStore.open(name, { what: "link" }, new Uint8Array(0)).deleteAndClose();
        } catch (error) {
          if (!(error instanceof NotFoundError)) throw error;
        }
      }
    }
    try {
      SharedMemory.unlink(this.#registry.shm.name);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, WHAT, this.#name);
  }

  #checkPeer(peer: unknown): string {
    const name = validateName(peer, "peer name");
    if (name === this.#name) {
      throw new TypeError(`Invalid peer "${name}": a process does not link to itself`);
    }
    return name;
  }

  #identity(from: string, to: string) {
    return { what: "link", label: `${from} -> ${to} (namespace ${this.#namespace})` };
  }

  // This process's queue to `peer`; the first use establishes the link and enters this
  // process in the peer's table, so that its receive() from anyone sees the link.
  #outgoingTo(peer: string): MailboxStore {
    let store = this.#outgoing.get(peer);
    if (store !== undefined && !store.deleted) return store;
    if (store !== undefined) {
      // The peer removed its endpoint and links; it may have opened its name again since.
      this.#forget(peer);
    }
    let registry = this.#peerRegistries.get(peer);
    if (registry === undefined) {
      try {
        registry = Registry.openExisting(registryName(this.#namespace, peer));
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        throw new NotFoundError(ERRNO.ENOENT, "send", {
          objectName: peer,
          message: `No process named "${peer}" in namespace "${this.#namespace}" ` +
            `(it has never opened its endpoint)`,
        });
      }
      this.#peerRegistries.set(peer, registry);
    }
    store = MailboxStore.openOrCreate(
      { name: linkName(this.#namespace, this.#name, peer), ...this.#linkOptions },
      this.#identity(this.#name, peer),
      this.#senderName,
    );
    const notified = registry;
    store.onPublish = () => notified.notify();
    this.#outgoing.set(peer, store);
    this.#incomingFrom(peer); // the link has both directions
    registry.register(this.#name);
    return store;
  }

  #incomingFrom(peer: string): MailboxStore {
    let store = this.#incoming.get(peer);
    if (store !== undefined && store.deleted) {
      this.#forget(peer);
      store = undefined;
    }
    if (store === undefined) {
      store = MailboxStore.openOrCreate(
        { name: linkName(this.#namespace, peer, this.#name), ...this.#linkOptions },
        this.#identity(peer, this.#name),
        this.#senderName,
      );
      this.#incoming.set(peer, store);
      // Listed in this endpoint's table too, so that unlink() finds links that only
      // receiveFrom() established.
      this.#registry.register(peer);
    }
    return store;
  }

  // Drops this process's handles on a link the peer deleted (and on its old registry).
  #forget(peer: string): void {
    for (const map of [this.#outgoing, this.#incoming]) {
      map.get(peer)?.close();
      map.delete(peer);
    }
    this.#peerRegistries.get(peer)?.close();
    this.#peerRegistries.delete(peer);
  }

  #refreshPeers(): void {
    const registry = this.#registry;
    const count = registry.peerCount;
    if (this.#scanned === count && this.#unwritten.length === 0) return;
    const found: (string | null)[] = [];
    this.#unwritten = this.#unwritten.filter((index) => {
      const peer = registry.peer(index);
      if (peer === undefined) return true;
      found.push(peer);
      return false;
    });
    for (; this.#scanned < count; this.#scanned++) {
      const peer = registry.peer(this.#scanned);
      if (peer === undefined) this.#unwritten.push(this.#scanned);
      else found.push(peer);
    }
    for (const peer of found) {
      if (peer === null || peer === this.#name || this.#knownSet.has(peer)) continue;
      this.#knownSet.add(peer);
      this.#known.push(peer);
      this.#incomingFrom(peer);
    }
  }

  // `patient`: the try form, which waits about a millisecond for a link's lock held by
  // another process; the wait loop's attempts never wait.
  #attemptReceiveAny(patient: boolean): MailboxMessage | undefined {
    this.#refreshPeers();
    const known = this.#known;
    for (let j = 0; j < known.length; j++) {
      const index = (this.#next + j) % known.length;
      const store = this.#incoming.get(known[index]);
      if (store === undefined || store.closed || !store.hasMessage()) continue;
      const message = store.tryReceive(patient);
      if (message !== undefined) {
        this.#next = index + 1;
        return message;
      }
    }
    return undefined;
  }
}

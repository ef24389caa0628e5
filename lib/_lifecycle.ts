// Identity and attachments of the library's shared-memory objects (rings, buffers,
// mailboxes, direct registries, doorbells): a block of LIFE_BYTES at the end of the
// region, found through one word of the structure's own header (which holds the block's
// offset; 0 in objects made before it existed, which then simply have no identity).
//
// Block layout (little-endian):
//   bytes  0..3   magic "DILF"          bytes  4..7  version
//   bytes  8..11  kind code (KIND_CODES) bytes 12..15 creator's uid
//   bytes 16..23  creator's process token (pid + start time, see _process.ts)
//   bytes 24..31  creation time, ms since the epoch (float64)
//   bytes 32..39  removal mark: 0, the token of a cleaner deciding, or REMOVED
//   bytes 40..43  handles open beyond the table (not tracked by token)
//   bytes 44..47  number of attachment slots
//   bytes 64..    ATTACH_SLOTS 64-bit slots: the token of a process with a handle open
//
// A handle takes a slot on open and frees it on close. A slot whose process is dead is
// free (pid + start time, so a reused pid never keeps it). A cleaner marks the block
// before it looks at the slots one last time; an opener takes its slot before it looks at
// the mark: with sequentially consistent atomics, one of them always sees the other, so an
// open racing a cleanup either gets the object intact or a clear NotFoundError.
import { ERRNO } from "../ffi/constants.ts";
import { NotFoundError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { currentProcessToken, tokenAlive } from "./_process.ts";
import { step } from "./_steps.ts";
import type { SharedMemory } from "./shared_memory.ts";

/** Bytes of the identity block. */
export const LIFE_BYTES = 256;
/** Magic number of the identity block ("DILF"). */
export const LIFE_MAGIC = 0x46_4c_49_44;
/** Format version of the identity block. */
export const LIFE_VERSION = 1;
/** Processes tracked by token; handles beyond these are only counted. */
export const ATTACH_SLOTS = 24;
/** The removal mark of an object whose name a cleaner is removing now. */
export const REMOVED = -1n;

const W_MAGIC = 0; // Int32 indexes
const W_VERSION = 1;
const W_KIND = 2;
const W_UID = 3;
const B_CREATOR = 2; // BigInt64 indexes
const F_CREATED = 3; // Float64 index
const B_MARK = 4;
const W_UNTRACKED = 10;
const W_SLOT_COUNT = 11;
const B_SLOTS = 8;

/**
 * Kind codes kept in the block. A new kind adds one entry here (and one in
 * lib/_kinds.ts, which teaches the lister to read its header).
 */
export const KIND_CODES = {
  "ring": 1,
  "bounded-buffer": 2,
  "semaphore-bounded-buffer": 3,
  "mailbox": 4,
  "direct-registry": 5,
  "direct-link": 6,
  "doorbell": 7,
} as const;

/** The name of a kind code kept in the block, or undefined for an unknown code. */
export function kindName(code: number): string | undefined {
  for (const [name, value] of Object.entries(KIND_CODES)) if (value === code) return name;
  return undefined;
}

/** The region size a structure of `bytes` needs with its identity block. */
export function withLife(bytes: number): number {
  return Math.ceil(bytes / 8) * 8 + LIFE_BYTES;
}

/**
 * Writes a new identity block at the end of `shm` and returns its offset, for the
 * structure to keep in its header (call it inside SharedMemory.create's `initialize`).
 */
export function writeIdentity(shm: SharedMemory, kind: keyof typeof KIND_CODES): number {
  const offset = shm.size - LIFE_BYTES;
  const words = shm.view(Int32Array, offset, LIFE_BYTES / 4);
  const big = shm.view(BigInt64Array, offset, LIFE_BYTES / 8);
  words[W_MAGIC] = LIFE_MAGIC;
  words[W_VERSION] = LIFE_VERSION;
  words[W_KIND] = KIND_CODES[kind];
  words[W_UID] = libc().symbols.geteuid();
  big[B_CREATOR] = currentProcessToken();
  shm.view(Float64Array, offset, LIFE_BYTES / 8)[F_CREATED] = Date.now();
  words[W_SLOT_COUNT] = ATTACH_SLOTS;
  return offset;
}

/** Whether `offset` (read from a header) locates a valid identity block in `shm`. */
function validBlock(shm: SharedMemory, offset: number): boolean {
  if (offset !== shm.size - LIFE_BYTES || offset <= 0 || offset % 8 !== 0) return false;
  const words = shm.view(Int32Array, offset, LIFE_BYTES / 4);
  return words[W_MAGIC] === LIFE_MAGIC && words[W_VERSION] === LIFE_VERSION &&
    words[W_SLOT_COUNT] === ATTACH_SLOTS;
}

/**
 * A handle's attachment to an object: its slot in the table (or its count among the
 * untracked handles when the table is full of live processes). A no-op for objects
 * without a valid identity block.
 */
export class Attachment {
  readonly #big: BigInt64Array | undefined;
  readonly #words: Int32Array | undefined;
  #slot = -1; // -2: counted as untracked
  #detached = false;

  private constructor(shm: SharedMemory, offset: number) {
    if (validBlock(shm, offset)) {
      this.#big = shm.view(BigInt64Array, offset, LIFE_BYTES / 8);
      this.#words = shm.view(Int32Array, offset, LIFE_BYTES / 4);
    }
  }

  /**
   * Attaches this process to the object whose identity block is at `offset` (the value
   * its header keeps). Throws NotFoundError (and leaves no trace) when a cleaner is
   * removing the object; the caller then closes `shm`.
   */
  static attach(shm: SharedMemory, offset: number, what: string): Attachment {
    const attachment = new Attachment(shm, offset);
    attachment.#claim();
    step("lifecycle.attach.claimed"); // slot taken, mark not read yet
    const mark = attachment.#big === undefined ? 0n : Atomics.load(attachment.#big, B_MARK);
    if (mark !== 0n) {
      // A cleaner that died while deciding leaves its mark: cleared, the object is live.
      const abandoned = mark !== REMOVED && !tokenAlive(mark) &&
        Atomics.compareExchange(attachment.#big!, B_MARK, mark, 0n) === mark;
      if (!abandoned) {
        attachment.detach();
        throw new NotFoundError(ERRNO.ENOENT, "open", {
          objectName: shm.name,
          message: `Cannot open ${what} "${shm.name}": it is being removed (ipc clean)`,
        });
      }
    }
    return attachment;
  }

  #claim(): void {
    const big = this.#big;
    if (big === undefined) return;
    const me = currentProcessToken();
    // Free slots first; only when there are none, a slot of a dead process (each costs a
    // read of /proc).
    for (let i = 0; i < ATTACH_SLOTS; i++) {
      if (Atomics.compareExchange(big, B_SLOTS + i, 0n, me) === 0n) {
        this.#slot = i;
        return;
      }
    }
    for (let i = 0; i < ATTACH_SLOTS; i++) {
      const value = Atomics.load(big, B_SLOTS + i);
      if (value !== me && !tokenAlive(value)) {
        if (Atomics.compareExchange(big, B_SLOTS + i, value, me) === value) {
          this.#slot = i;
          return;
        }
      }
    }
    Atomics.add(this.#words!, W_UNTRACKED, 1);
    this.#slot = -2;
  }

  /** Frees the slot. Idempotent. */
  detach(): void {
    if (this.#detached || this.#big === undefined) return;
    this.#detached = true;
    if (this.#slot >= 0) {
      Atomics.compareExchange(this.#big, B_SLOTS + this.#slot, currentProcessToken(), 0n);
    } else if (this.#slot === -2) {
      Atomics.sub(this.#words!, W_UNTRACKED, 1);
    }
  }
}

/** What an identity block says, every field validated. */
export interface Identity {
  kind: string | undefined;
  kindCode: number;
  uid: number;
  creatorToken: bigint;
  created: number;
  mark: bigint;
  untracked: number;
  slots: bigint[];
}

/**
 * Reads an identity block from `bytes` (a copy of the block: never a live mapping) and
 * validates it; returns a description of what is wrong instead when it is not valid.
 */
export function decodeIdentity(bytes: Uint8Array): Identity | string {
  if (bytes.length < LIFE_BYTES) return `identity block has ${bytes.length} bytes`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, LIFE_BYTES);
  const magic = view.getInt32(W_MAGIC * 4, true);
  if (magic !== LIFE_MAGIC) return `identity magic 0x${(magic >>> 0).toString(16)}`;
  const version = view.getInt32(W_VERSION * 4, true);
  if (version !== LIFE_VERSION) return `identity version ${version}`;
  const slotCount = view.getInt32(W_SLOT_COUNT * 4, true);
  if (slotCount !== ATTACH_SLOTS) return `identity slot count ${slotCount}`;
  const kindCode = view.getInt32(W_KIND * 4, true);
  const untracked = view.getInt32(W_UNTRACKED * 4, true);
  if (untracked < 0) return `untracked attachments ${untracked}`;
  const created = view.getFloat64(F_CREATED * 8, true);
  // 8.64e15 ms: the last instant a Date holds (a later one cannot be printed).
  if (!(created >= 0 && created <= 8.64e15)) return `creation time ${created}`;
  const slots: bigint[] = [];
  for (let i = 0; i < ATTACH_SLOTS; i++) {
    const value = view.getBigInt64((B_SLOTS + i) * 8, true);
    if (value !== 0n) slots.push(value);
  }
  return {
    kind: kindName(kindCode),
    kindCode,
    uid: view.getUint32(W_UID * 4, true),
    creatorToken: view.getBigInt64(B_CREATOR * 8, true),
    created,
    mark: view.getBigInt64(B_MARK * 8, true),
    untracked,
    slots,
  };
}

/**
 * The cleaner's side over a mapped object: mark it, look at the slots one last time, and
 * either give up (unmark) or seal it as REMOVED before unlinking its name.
 */
export class RemovalMark {
  readonly #big: BigInt64Array;
  readonly #words: Int32Array;

  private constructor(shm: SharedMemory, offset: number) {
    this.#big = shm.view(BigInt64Array, offset, LIFE_BYTES / 8);
    this.#words = shm.view(Int32Array, offset, LIFE_BYTES / 4);
  }

  /** The block of `shm` at `offset`, or undefined when it is not a valid block. */
  static of(shm: SharedMemory, offset: number): RemovalMark | undefined {
    return validBlock(shm, offset) ? new RemovalMark(shm, offset) : undefined;
  }

  /**
   * Marks the object for removal, then checks that no live process is attached (and none
   * untracked). Returns true when the caller may remove it (then call `seal()`); false
   * (mark withdrawn) when another cleaner works on it or a process is attached.
   */
  tryMark(): boolean {
    step("lifecycle.clean.marking"); // decided from the listing, not marked yet
    const me = currentProcessToken();
    const mark = Atomics.load(this.#big, B_MARK);
    // Sealed by a cleaner that died (or is about to remove the name): no opener gets it
    // any more, so finishing the removal loses nothing, unless someone is attached.
    if (mark === REMOVED) return !this.#inUse();
    if (mark !== 0n && (mark === me || tokenAlive(mark))) return false;
    if (Atomics.compareExchange(this.#big, B_MARK, mark, me) !== mark) return false;
    step("lifecycle.clean.marked"); // marked, slots not looked at yet
    // After the mark: an opener that takes a slot from now on sees the mark and gives up.
    const live = this.#inUse();
    if (live) Atomics.compareExchange(this.#big, B_MARK, me, 0n);
    return !live;
  }

  // Whether a live process is attached, or handles are open beyond the table.
  #inUse(): boolean {
    if (Atomics.load(this.#words, W_UNTRACKED) !== 0) return true;
    for (let i = 0; i < ATTACH_SLOTS; i++) {
      const value = Atomics.load(this.#big, B_SLOTS + i);
      if (value !== 0n && tokenAlive(value)) return true;
    }
    return false;
  }

  /** Seals the mark: openers that still reach the object get NotFoundError. */
  seal(): void {
    Atomics.store(this.#big, B_MARK, REMOVED);
    step("lifecycle.clean.sealed"); // sealed, name not removed yet
  }
}

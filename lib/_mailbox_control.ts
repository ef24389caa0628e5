// The control block of a mailbox or link direction (lib/_mailbox_store.ts): its layout,
// and how it is made (whole, first segment included, before its name appears) and opened.
import { withLife, writeIdentity } from "./_lifecycle.ts";
import { openLayout } from "./_layout.ts";
import {
  RECORD_HEADER,
  RING_RECORD_OVERHEAD,
  roundUp8,
  SENDER_NAME_MAX,
  type StoreCreateOptions,
  type StoreIdentity,
  validateStoreName,
  validateStoreOptions,
} from "./_mailbox_message.ts";
import { OFFER_SLOTS } from "./_rendezvous.ts";
import { ignoreNotFound, ringOptions, segmentName } from "./_segment_chain.ts";
import { MessageRing } from "./message_ring.ts";
import { SharedMemory } from "./shared_memory.ts";

export const MAGIC = 0x4d_42_4f_58; // "MBOX"
export const VERSION = 4;

// Control block layout (Int32 indices). Words written by different sides sit on
// separate 64-byte cache lines.
export const I_MAGIC = 0;
export const I_VERSION = 1;
export const I_CAPACITY = 2; // -1: unbounded
export const I_MAX_MESSAGE = 3;
export const I_SEGMENT_BYTES = 4;
export const I_MODE = 5;
export const I_DELETED = 6;
export const I_TOKEN = 7; // random: segment names are <name>.<token>.<index>
export const I_LIFE = 8; // byte offset of the identity block (lib/_lifecycle.ts); 0 in older stores
export const I_SEND_LOCK = 16; // 64-bit: the token of the process holding it
export const I_WRITE_SEGMENT = 18;
export const I_SENT = 19;
export const I_SEND_INTENT = 20; // the sequence being published; equals SENT between sends
// Counters (lib/_mailbox_counters.ts), on the line their side writes anyway. Zero in
// stores made before they existed (same layout version: the words were unused).
export const I_SENDS_FULL = 22; // sends that could not complete at once (full, or lock busy)
export const I_HIGHEST_DEPTH = 23; // highest SENT - TAKEN a sender sampled (at its flushes)
export const F_SENT_BYTES = 12; // Float64 index: byte 96
export const I_RECEIVE_LOCK = 32; // 64-bit
export const I_READ_SEGMENT = 34;
export const I_TAKEN = 35;
export const F_RECEIVED_BYTES = 20; // Float64 index: byte 160
export const I_SEND_WAITING = 48; // futex flag: senders wait for room (or the send lock)
export const I_RECEIVE_WAITING = 64; // futex flag: receivers wait for a message (or the lock)
export const I_TAKEN_WAITING = 80; // futex flag: rendezvous senders wait for their message to go
export const I_FATE = 96; // 64-bit: the fate of the last rendezvous message (_rendezvous.ts)
export const I_SEND_LOCK_WAITING = 112; // futex flag: senders wait for the send lock
export const I_RECEIVE_LOCK_WAITING = 120; // futex flag: receivers wait for the receive lock
export const I_OFFER_SLOTS = 128; // 64-bit slots: tokens of receivers blocked in receive()
export const CONTROL_BYTES = 512 + OFFER_SLOTS * 8;

export const UNBOUNDED = -1;

/** Makes the control block of a new store and its first segment, under `options.name`. */
export function createControl(options: StoreCreateOptions, identity: StoreIdentity): SharedMemory {
  const { capacity, maxMessageSize, segmentSize, mode } = validateStoreOptions(
    options,
    identity.what,
  );
  const name = validateStoreName(options.name, identity.what);
  const entry = RING_RECORD_OVERHEAD +
    roundUp8(RECORD_HEADER + SENDER_NAME_MAX + maxMessageSize);
  const ringBytes = capacity === "unbounded" ? segmentSize : Math.max(capacity, 1) * entry;
  const token = crypto.getRandomValues(new Int32Array(1))[0];
  const firstSegment = segmentName(name, token, 0);
  let segmentMade = false;
  let control: SharedMemory;
  try {
    // The control block's name appears only once it is whole, first segment included:
    // no opener ever sees a half-made mailbox, and a creator killed meanwhile leaves
    // the name free (at worst an orphan segment under its random token).
    control = SharedMemory.create({
      name,
      size: withLife(CONTROL_BYTES),
      mode,
      initialize: (shm) => {
        const words = shm.view(Int32Array, 0, CONTROL_BYTES / 4);
        words[I_MAGIC] = MAGIC;
        words[I_VERSION] = VERSION;
        words[I_CAPACITY] = capacity === "unbounded" ? UNBOUNDED : capacity;
        words[I_MAX_MESSAGE] = maxMessageSize;
        words[I_SEGMENT_BYTES] = ringBytes;
        words[I_MODE] = mode;
        words[I_TOKEN] = token;
        words[I_LIFE] = writeIdentity(shm, identity.what === "link" ? "direct-link" : "mailbox");
        MessageRing.create(ringOptions(firstSegment, ringBytes, mode)).close();
        segmentMade = true;
      },
    });
  } catch (error) {
    if (segmentMade) ignoreNotFound(() => MessageRing.unlink(firstSegment));
    throw error;
  }
  return control;
}

/** Opens the control block of an existing store (checked: magic, version, size). */
export function openControl(name: string, identity: StoreIdentity): SharedMemory {
  validateStoreName(name, identity.what);
  const control = openLayout({ name }, identity.what, (shm) => {
    if (shm.size < CONTROL_BYTES) return false;
    const words = shm.view(Int32Array, 0, CONTROL_BYTES / 4);
    return Atomics.load(words, I_MAGIC) === MAGIC && words[I_VERSION] === VERSION;
  });
  return control;
}

// The kinds of shared-memory objects the library makes, as the lister (lib/introspect.ts)
// reads them: how to recognise one (a magic number at an offset), where its header keeps
// the offset of its identity block (lib/_lifecycle.ts), and what its header says.
//
// The layouts here mirror the modules that own them (message_ring.ts, _mailbox_store.ts,
// bounded_buffer.ts, direct.ts, signal.ts); each decoder validates every field it uses,
// since another process can write any of them. Adding a kind (Mach ports, ALPC, ...) is
// one entry in SHM_KINDS and one code in KIND_CODES of _lifecycle.ts.
import { processAlive, processExists, tokenAlive, tokenParts } from "./_process.ts";

/** A field of a header found invalid: the lister reports the object as corrupted. */
export class HeaderProblem extends Error {}

/** What a kind's header says, for `ipc inspect` and the list's depth column. */
export interface HeaderReport {
  /** Messages (or items, or bytes: see `depthUnit`) waiting now. */
  depth?: number;
  depthUnit?: "messages" | "items" | "bytes" | "events";
  /** Kind-specific fields: plain JSON values. */
  details: Record<string, unknown>;
}

/** One kind of shared-memory object. */
export interface ShmKind {
  /** The kind's name in listings (also the key of its code in KIND_CODES). */
  kind: string;
  /** Byte offset and value of the 32-bit magic number that identifies it. */
  magicOffset: number;
  magic: number;
  /** Bytes of header the decoder reads (fewer when the object is smaller: corrupted). */
  headerBytes: number;
  /** Int32 index of the header word holding the identity block's offset. */
  lifeWord: number;
  /** Decodes a header copy; throws HeaderProblem for an invalid field. */
  decode(header: DataView, size: number): HeaderReport;
}

function problem(field: string, detail: string): never {
  throw new HeaderProblem(`${field} ${detail}`);
}

function i32(view: DataView, index: number): number {
  return view.getInt32(index * 4, true);
}

function u32(view: DataView, index: number): number {
  return view.getUint32(index * 4, true);
}

/** A lock word: the holder's pid and whether it is alive, or null when free. */
function lockHolder(view: DataView, byteOffset: number): { pid: number; alive: boolean } | null {
  const token = view.getBigInt64(byteOffset, true);
  if (token === 0n) return null;
  return { pid: tokenParts(token).pid, alive: tokenAlive(token) };
}

function counter(view: DataView, byteOffset: number): number {
  const value = view.getFloat64(byteOffset, true);
  // Rings made before the counters existed, or a hostile value: reported as 0.
  return Number.isFinite(value) && value >= 0 ? value : 0;
}

const ring: ShmKind = {
  kind: "ring",
  magicOffset: 0,
  magic: 0x52_50_49_44,
  headerBytes: 512,
  lifeWord: 6,
  decode(view, size) {
    const version = i32(view, 1);
    if (version !== 3) problem("version", `${version}, expected 3`);
    const capacity = i32(view, 2);
    if (!(capacity >= 64 && capacity <= 2 ** 30 && (capacity & (capacity - 1)) === 0)) {
      problem("capacity", `${capacity} is not a power of two from 64 to 2^30`);
    }
    const flags = i32(view, 3);
    if ((flags & ~3) !== 0) problem("flags", `0x${(flags >>> 0).toString(16)} has unknown bits`);
    const producers = i32(view, 4);
    if (!(producers >= 0 && producers <= 4096)) problem("producers", `${producers}`);
    const need = 512 + Math.ceil(producers * 8 / 64) * 64 + capacity;
    if (size < need) problem("size", `${size} bytes, the header says ${need}`);
    const head = u32(view, 16);
    const tail = u32(view, 32);
    const used = (head - tail) >>> 0;
    if (used > capacity || (head & 7) !== 0 || (tail & 7) !== 0) {
      problem("positions", `head ${head} and tail ${tail} (capacity ${capacity})`);
    }
    const ended = i32(view, 112);
    return {
      depth: used,
      depthUnit: "bytes",
      details: {
        capacity,
        multiProducer: (flags & 1) !== 0,
        multiConsumer: (flags & 2) !== 0,
        producers,
        producersEnded: ended,
        streamEnded: producers > 0 && ended >= producers,
        head,
        tail,
        usedBytes: used,
        handlesOpened: u32(view, 5),
        sendLock: lockHolder(view, 192),
        receiveLock: lockHolder(view, 256),
        sentMessages: counter(view, 72),
        sentBytes: counter(view, 80),
        receivedMessages: counter(view, 136),
        receivedBytes: counter(view, 144),
        // Sampled when a receiver catches up, so the depth now may be higher.
        highestDepthBytes: Math.max(counter(view, 152), used),
        sendsFoundFull: u32(view, 22),
      },
    };
  },
};

function mailboxKind(kind: string): ShmKind {
  return {
    kind,
    magicOffset: 0,
    magic: 0x4d_42_4f_58,
    headerBytes: 512,
    lifeWord: 8,
    decode(view) {
      const version = i32(view, 1);
      if (version !== 4) problem("version", `${version}, expected 4`);
      const capacity = i32(view, 2);
      if (capacity < -1) problem("capacity", `${capacity}`);
      const maxMessageSize = i32(view, 3);
      if (maxMessageSize < 0) problem("max message size", `${maxMessageSize}`);
      const sent = u32(view, 19);
      const taken = u32(view, 35);
      const depth = (sent - taken) | 0;
      if (depth < 0 || (capacity >= 0 && depth > Math.max(capacity, 1))) {
        problem("sequences", `sent ${sent}, taken ${taken} (capacity ${capacity})`);
      }
      return {
        depth,
        depthUnit: "messages",
        details: {
          capacity: capacity === -1 ? "unbounded" : capacity,
          maxMessageSize,
          segmentBytes: i32(view, 4),
          deleted: i32(view, 6) !== 0,
          segmentToken: (u32(view, 7)).toString(16).padStart(8, "0"),
          writeSegment: u32(view, 18),
          readSegment: u32(view, 34),
          sentMessages: sent,
          receivedMessages: taken,
          sentBytes: counter(view, 96),
          receivedBytes: counter(view, 160),
          highestDepth: Math.max(u32(view, 23), depth),
          sendsFoundFull: u32(view, 22),
          sendLock: lockHolder(view, 64),
          receiveLock: lockHolder(view, 128),
        },
      };
    },
  };
}

const boundedBuffer: ShmKind = {
  kind: "bounded-buffer",
  magicOffset: 0,
  magic: 0x42_42_49_44,
  headerBytes: 320,
  lifeWord: 4,
  decode(view, size) {
    const bufferSize = i32(view, 1);
    const itemSize = i32(view, 2);
    if (!(bufferSize >= 2 && itemSize >= 1 && 320 + bufferSize * itemSize <= size)) {
      problem("shape", `${bufferSize} slots of ${itemSize} bytes in ${size} bytes`);
    }
    const into = i32(view, 16);
    const out = i32(view, 32);
    if (!(into >= 0 && into < bufferSize && out >= 0 && out < bufferSize)) {
      problem("positions", `in ${into}, out ${out} (buffer size ${bufferSize})`);
    }
    return {
      depth: (into - out + bufferSize) % bufferSize,
      depthUnit: "items",
      details: { bufferSize, itemSize, in: into, out, ended: i32(view, 3) !== 0 },
    };
  },
};

const semaphoreBuffer: ShmKind = {
  kind: "semaphore-bounded-buffer",
  magicOffset: 96,
  magic: 0x42_53_49_44,
  headerBytes: 128,
  lifeWord: 31, // word 7 of the block at byte 96
  decode(view, size) {
    const bufferSize = i32(view, 25);
    const itemSize = i32(view, 26);
    if (!(bufferSize >= 1 && itemSize >= 1 && 128 + bufferSize * itemSize <= size)) {
      problem("shape", `${bufferSize} slots of ${itemSize} bytes in ${size} bytes`);
    }
    const into = i32(view, 28);
    const out = i32(view, 29);
    const count = i32(view, 30);
    if (!(into >= 0 && into < bufferSize && out >= 0 && out < bufferSize)) {
      problem("positions", `in ${into}, out ${out} (buffer size ${bufferSize})`);
    }
    if (!(count >= 0 && count <= bufferSize)) problem("count", `${count}`);
    return {
      depth: count,
      depthUnit: "items",
      details: { bufferSize, itemSize, in: into, out, count, ended: i32(view, 27) !== 0 },
    };
  },
};

const directRegistry: ShmKind = {
  kind: "direct-registry",
  magicOffset: 0,
  magic: 0x44_49_52_43,
  headerBytes: 256,
  lifeWord: 3,
  decode(view) {
    const version = i32(view, 1);
    if (version !== 3) problem("version", `${version}, expected 3`);
    const owner = i32(view, 2);
    if (owner < 0) problem("owner", `${owner}`);
    const peers = i32(view, 18);
    if (peers < 0) problem("peer count", `${peers}`);
    return {
      details: {
        owner: owner === 0 ? null : { pid: owner, alive: processExists(owner) },
        peers: Math.min(peers, 256),
        arrivals: u32(view, 48),
      },
    };
  },
};

const doorbell: ShmKind = {
  kind: "doorbell",
  magicOffset: 0,
  magic: 0x4c_42_49_44,
  headerBytes: 192,
  lifeWord: 6,
  decode(view) {
    const version = i32(view, 1);
    if (version !== 2) problem("version", `${version}, expected 2`);
    const word = view.getBigInt64(16, true);
    const rung = u32(view, 16);
    const delivered = u32(view, 32);
    let listener = null;
    if (word !== 0n) {
      const { pid: low, startTime } = tokenParts(word);
      const pid = low & 0xff_ffff;
      listener = {
        pid,
        signal: (low >>> 24) & 0x7f,
        alive: processAlive(pid, startTime),
      };
    }
    return {
      depth: (rung - delivered) >>> 0,
      depthUnit: "events",
      details: { listener, rung, delivered, ringsInFlight: i32(view, 3) },
    };
  },
};

/** Every kind of shared-memory object the lister recognises. */
export const SHM_KINDS: readonly ShmKind[] = [
  ring,
  mailboxKind("mailbox"),
  boundedBuffer,
  semaphoreBuffer,
  directRegistry,
  doorbell,
];

/** The mailbox kinds share one header: the identity block tells a link from a mailbox. */
export const MAILBOX_FAMILY = new Set(["mailbox", "direct-link"]);

/** The decoder of a direct link (a mailbox store under another kind name). */
export const DIRECT_LINK: ShmKind = mailboxKind("direct-link");

/** The kind whose magic `header` carries, or undefined. */
export function recognise(header: DataView): ShmKind | undefined {
  for (const kind of SHM_KINDS) {
    if (
      header.byteLength >= kind.magicOffset + 4 &&
      header.getInt32(kind.magicOffset, true) === kind.magic
    ) return kind;
  }
  return undefined;
}

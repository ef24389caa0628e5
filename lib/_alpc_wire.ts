// ALPC on the wire: the handshake on the raw socket (with the sections' descriptors in
// SCM_RIGHTS), then framed messages whose 48-byte header says which of the three paths
// the payload took. Everything read here comes from the other process: lengths, offsets
// and counts are checked before they size a buffer or index memory.
import { C, ERRNO } from "../ffi/constants.ts";
import {
  closedError,
  CorruptedError,
  errnoBelieved,
  errnoError,
  lastErrno,
  timedOutError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import { pollReady } from "./_poll.ts";
import { PENDING, waitFor, type WaitOptions } from "./_wait.ts";

/** Message kinds (header byte 0). */
export const KIND = {
  request: 1,
  reply: 2,
  datagram: 3,
  errorReply: 4,
  /** The receiver is done with section space: header offset and length name it. */
  free: 5,
  /** The receiver has read (or written) a pinned buffer: the sender may let it go. */
  vmDone: 6,
  /** An orderly close: the peer did not die. */
  goodbye: 7,
} as const;

/** Path codes (header byte 1). */
export const PATH_CODE = { inline: 0, section: 1, vm: 2 } as const;
/** The three ways a payload travels. */
export type AlpcPath = "inline" | "section" | "vm";
const PATH_NAMES: readonly AlpcPath[] = ["inline", "section", "vm"];

/** Bytes of a message header (before the inline payload). */
export const HEADER_SIZE = 48;
/** Real ALPC messages are at most 65,535 bytes including their header (16-bit lengths). */
export const MAX_INLINE_LIMIT = 65_535 - HEADER_SIZE;
/** Bit of header flags on a vmDone: it releases a pinned reply (not a request). */
export const FLAG_FOR_REPLY = 1;
/** Bit of header flags on an in-place reply: already written into the reply buffer. */
export const FLAG_WRITTEN = 2;

/** A decoded header. Fields are as the peer wrote them: validated by the receiver. */
export interface Header {
  kind: number;
  path: number;
  depth: number;
  id: number;
  callbackOf: number;
  length: number;
  offset: number;
  flags: number;
  address: bigint;
  /** On a request: where the replier may write a large reply (0: nowhere), and room. */
  replyAddress: bigint;
  replyCapacity: number;
}

/** Encodes a frame: header then `inline` (empty unless the path is inline). */
export function encodeFrame(header: Header, inline?: Uint8Array): Uint8Array {
  const frame = new Uint8Array(HEADER_SIZE + (inline?.length ?? 0));
  const view = new DataView(frame.buffer);
  view.setUint8(0, header.kind);
  view.setUint8(1, header.path);
  view.setUint16(2, header.depth, true);
  view.setUint32(4, header.id, true);
  view.setUint32(8, header.callbackOf, true);
  view.setUint32(12, header.length, true);
  view.setUint32(16, header.offset, true);
  view.setUint32(20, header.flags, true);
  view.setBigUint64(24, header.address, true);
  view.setBigUint64(32, header.replyAddress, true);
  view.setUint32(40, header.replyCapacity, true);
  if (inline) frame.set(inline, HEADER_SIZE);
  return frame;
}

/** A header with every field zero but those given. */
export function makeHeader(fields: Partial<Header>): Header {
  return {
    kind: 0,
    path: PATH_CODE.inline,
    depth: 0,
    id: 0,
    callbackOf: 0,
    length: 0,
    offset: 0,
    flags: 0,
    address: 0n,
    replyAddress: 0n,
    replyCapacity: 0,
    ...fields,
  };
}

/** Decodes a frame's header; a frame shorter than a header is corrupt. */
export function decodeHeader(frame: Uint8Array, name: string): Header {
  if (frame.length < HEADER_SIZE) {
    throw CorruptedError.of("ALPC port", name, "message header", `of ${frame.length} bytes`);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.length);
  return {
    kind: view.getUint8(0),
    path: view.getUint8(1),
    depth: view.getUint16(2, true),
    id: view.getUint32(4, true),
    callbackOf: view.getUint32(8, true),
    length: view.getUint32(12, true),
    offset: view.getUint32(16, true),
    flags: view.getUint32(20, true),
    address: view.getBigUint64(24, true),
    replyAddress: view.getBigUint64(32, true),
    replyCapacity: view.getUint32(40, true),
  };
}

/** The name of a path code, or a CorruptedError. */
export function pathName(code: number, name: string): AlpcPath {
  const path = PATH_NAMES[code];
  if (path === undefined) throw CorruptedError.of("ALPC port", name, "path code", String(code));
  return path;
}

// ---- The handshake ----

const MAGIC = 0x414c_5043; // "ALPC"
const VERSION = 1;
/** Bytes of the fixed part of a connection request or reply. */
export const HANDSHAKE_HEADER = 20;
/** Largest connection payload (request or reply): one ALPC message's worth. */
export const MAX_CONNECTION_PAYLOAD = 65_535 - HANDSHAKE_HEADER;
/** Status of a connection reply. */
export const STATUS = { accepted: 1, refused: 2 } as const;

/** A connection request or reply as read from the socket. */
export interface Handshake {
  /** Request: 0; reply: a {@link STATUS}. */
  status: number;
  sectionSize: number;
  inlineLimit: number;
  payload: Uint8Array;
  /** The section's descriptor, if one came (the receiver owns it). */
  descriptor: number | undefined;
}

/** Encodes a connection request (status 0) or reply. */
export function encodeHandshake(
  status: number,
  sectionSize: number,
  inlineLimit: number,
  payload: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(HANDSHAKE_HEADER + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setUint16(6, status, true);
  view.setUint32(8, sectionSize, true);
  view.setUint32(12, inlineLimit, true);
  view.setUint32(16, payload.length, true);
  bytes.set(payload, HANDSHAKE_HEADER);
  return bytes;
}

function cmsgSpace(count: number): number {
  return C.SIZEOF_CMSGHDR + Math.ceil((4 * count) / 8) * 8;
}

function address(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

/** Sends `bytes` whole on the non-blocking socket `fd`, `descriptors` with the first byte. */
export async function sendHandshake(
  fd: number,
  bytes: Uint8Array<ArrayBuffer>,
  descriptors: number[],
  name: string,
  options: WaitOptions,
  lifetime: Lifetime = new Lifetime(() => {}),
): Promise<void> {
  const { symbols } = libc();
  let sent = 0;
  while (sent < bytes.length) {
    sent += await waitFor({
      lifetime,
      attempt: () => {
        const rest = bytes.subarray(sent);
        const iov = new BigUint64Array([address(rest), BigInt(rest.length)]);
        const withFds = sent === 0 && descriptors.length > 0;
        const control = new Uint8Array(withFds ? cmsgSpace(descriptors.length) : 0);
        if (withFds) {
          const view = new DataView(control.buffer);
          view.setBigUint64(0, BigInt(C.SIZEOF_CMSGHDR + 4 * descriptors.length), true);
          view.setInt32(8, C.SOL_SOCKET, true);
          view.setInt32(12, C.SCM_RIGHTS, true);
          descriptors.forEach((d, i) => view.setInt32(C.SIZEOF_CMSGHDR + 4 * i, d, true));
        }
        const header = new DataView(new ArrayBuffer(C.SIZEOF_MSGHDR));
        header.setBigUint64(16, address(new Uint8Array(iov.buffer)), true);
        header.setBigUint64(24, 1n, true);
        if (withFds) {
          header.setBigUint64(32, address(control), true);
          header.setBigUint64(40, BigInt(control.length), true);
        }
        const message = new Uint8Array(header.buffer);
        const flags = C.MSG_DONTWAIT | C.MSG_NOSIGNAL;
        let result = symbols.sendmsg(fd, message, flags);
        if (result < 0 && !errnoBelieved("sendmsg")) result = symbols.sendmsg(fd, message, flags);
        if (result >= 0) return result;
        const errno = lastErrno();
        if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return PENDING;
        throw errnoError(errno, "sendmsg", { objectName: name });
      },
      park: async (ms) => {
        await pollReady(fd, C.POLLOUT, ms);
        return PENDING;
      },
      closedError: () => closedError("handshake on", "ALPC port", name),
      timedOutError: (ms) => timedOutError("connect to", "ALPC port", name, ms),
      spin: 0,
    }, options);
  }
}

/**
 * Reads one connection request or reply from `fd`: exactly its bytes (what follows is
 * left for the framing), and at most one descriptor (more, or a truncated control
 * message, is corruption; every descriptor received is closed unless returned).
 */
export async function receiveHandshake(
  fd: number,
  name: string,
  options: WaitOptions,
  lifetime: Lifetime = new Lifetime(() => {}),
): Promise<Handshake> {
  const received: number[] = [];
  try {
    const head = await receiveExactly(fd, HANDSHAKE_HEADER, received, name, options, lifetime);
    const view = new DataView(head.buffer);
    if (view.getUint32(0, true) !== MAGIC || view.getUint16(4, true) !== VERSION) {
      throw CorruptedError.of("ALPC port", name, "connection message", "(not ALPC version 1)");
    }
    const payloadLength = view.getUint32(16, true);
    if (payloadLength > MAX_CONNECTION_PAYLOAD) {
      throw CorruptedError.of(
        "ALPC port",
        name,
        "connection payload length",
        `${payloadLength} (over ${MAX_CONNECTION_PAYLOAD})`,
      );
    }
    const payload = await receiveExactly(fd, payloadLength, received, name, options, lifetime);
    if (received.length > 1) {
      throw CorruptedError.of("ALPC port", name, "connection message", "carries extra descriptors");
    }
    const handshake = {
      status: view.getUint16(6, true),
      sectionSize: view.getUint32(8, true),
      inlineLimit: view.getUint32(12, true),
      payload,
      descriptor: received[0],
    };
    received.length = 0;
    return handshake;
  } finally {
    for (const descriptor of received) libc().symbols.close(descriptor);
  }
}

async function receiveExactly(
  fd: number,
  length: number,
  descriptors: number[],
  name: string,
  options: WaitOptions,
  lifetime: Lifetime,
): Promise<Uint8Array> {
  const { symbols } = libc();
  const bytes = new Uint8Array(length);
  const control = new Uint8Array(cmsgSpace(4));
  let got = 0;
  while (got < length) {
    got += await waitFor({
      lifetime,
      attempt: () => {
        const rest = bytes.subarray(got);
        const iov = new BigUint64Array([address(rest), BigInt(rest.length)]);
        const header = new DataView(new ArrayBuffer(C.SIZEOF_MSGHDR));
        header.setBigUint64(16, address(new Uint8Array(iov.buffer)), true);
        header.setBigUint64(24, 1n, true);
        header.setBigUint64(32, address(control), true);
        header.setBigUint64(40, BigInt(control.length), true);
        const message = new Uint8Array(header.buffer);
        const flags = C.MSG_DONTWAIT | C.MSG_CMSG_CLOEXEC;
        let result = symbols.recvmsg(fd, message, flags);
        if (result < 0 && !errnoBelieved("recvmsg")) result = symbols.recvmsg(fd, message, flags);
        if (result < 0) {
          const errno = lastErrno();
          if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return PENDING;
          throw errnoError(errno, "recvmsg", { objectName: name });
        }
        collectDescriptors(header, control, descriptors);
        if ((header.getInt32(48, true) & C.MSG_CTRUNC) !== 0) {
          throw CorruptedError.of("ALPC port", name, "connection message", "(descriptors cut)");
        }
        if (result === 0) {
          throw errnoError(ERRNO.ECONNRESET, "recvmsg", {
            objectName: name,
            message: `The peer of ALPC port "${name}" closed the connection during the handshake`,
          });
        }
        return result;
      },
      park: async (ms) => {
        await pollReady(fd, C.POLLIN, ms);
        return PENDING;
      },
      closedError: () => closedError("handshake on", "ALPC port", name),
      timedOutError: (ms) => timedOutError("handshake on", "ALPC port", name, ms),
      spin: 0,
    }, options);
  }
  return bytes;
}

// Descriptors in SCM_RIGHTS control messages, bounds-checked against what the kernel
// says it filled in.
function collectDescriptors(header: DataView, control: Uint8Array, into: number[]): void {
  const filled = Math.min(Number(header.getBigUint64(40, true)), control.length);
  const view = new DataView(control.buffer);
  let at = 0;
  while (at + C.SIZEOF_CMSGHDR <= filled) {
    const length = Number(view.getBigUint64(at, true));
    if (length < C.SIZEOF_CMSGHDR || at + length > filled) break;
    if (
      view.getInt32(at + 8, true) === C.SOL_SOCKET && view.getInt32(at + 12, true) === C.SCM_RIGHTS
    ) {
      for (let i = at + C.SIZEOF_CMSGHDR; i + 4 <= at + length; i += 4) {
        into.push(view.getInt32(i, true));
      }
    }
    at += Math.ceil(length / 8) * 8;
  }
}

// The wire of Mach ports: one SOCK_SEQPACKET packet per message (the kernel keeps the
// boundaries and delivers a packet whole or not at all), rights as descriptors in
// SCM_RIGHTS, and the sender's pid/uid/gid in SCM_CREDENTIALS, filled in by the kernel
// (the receiving end has SO_PASSCRED; deno-ipc never supplies credentials itself).
//
// Packet layout (little-endian), everything in it is untrusted input:
//   0  u32 magic "MACH"
//   4  u16 flags (FLAG_*)
//   6  u16 number of right descriptors
//   8  i32 message id (chosen by the application)
//   12 i32 queue slot the sender claimed, or -1 (send-once and notification messages)
//   16 u32 id of the send-once right the message was sent through, or 0
//   20 u32 body length
//   24 u32 number of descriptors in SCM_RIGHTS
//   28 u32 reserved (0)
//   32 right descriptors, 8 bytes each: u8 kind, u8 role, u16 descriptor count, u32 once id
//   .. body
import { C, ERRNO } from "../ffi/constants.ts";
import { check, CorruptedError, errnoBelieved, errnoError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";

export const MAGIC = 0x4843414d; // "MACH"
export const HEADER_SIZE = 32;
export const DESCRIPTOR_SIZE = 8;
/** The largest inline body: larger data travels as out-of-line memory. */
export const MAX_INLINE_BODY = 65_536;
/**
 * At most this many rights and memory regions in one message (at most 4 descriptors
 * each, plus a reply and a notify right: within SCM_MAX_FD, 253).
 */
export const MAX_RIGHTS = 60;
const MAX_PACKET = HEADER_SIZE + (MAX_RIGHTS + 2) * DESCRIPTOR_SIZE + MAX_INLINE_BODY;
const CONTROL_SIZE = 2048;
// Bodies up to this size are copied next to the header instead of passed by pointer.
const SMALL_BODY = 4096;

/** The message came through a send-once right (its once id is set). */
export const FLAG_VIA_SEND_ONCE = 1;
/** The message was forced into a full queue; msg-accepted is owed to its notify right. */
export const FLAG_CACHED = 2;
/** A msg-accepted notification, made by the receiving process's deno-ipc. */
export const FLAG_MSG_ACCEPTED = 4;
const KNOWN_FLAGS = FLAG_VIA_SEND_ONCE | FLAG_CACHED | FLAG_MSG_ACCEPTED;

/** Kinds of right descriptors. */
export const KIND_SEND = 1;
export const KIND_SEND_ONCE = 2;
export const KIND_RECEIVE = 3;
export const KIND_MEMORY = 4;
/**
 * Descriptors per kind: send = data socket, queue table, presence pipe; send-once = data
 * socket, once pipe; receive = receive end, data socket, queue table, presence pipe;
 * out-of-line memory = a sealed memfd.
 */
export const FDS_PER_KIND: Record<number, number> = {
  [KIND_SEND]: 3,
  [KIND_SEND_ONCE]: 2,
  [KIND_RECEIVE]: 4,
  [KIND_MEMORY]: 1,
};

/** Roles of right descriptors. */
export const ROLE_BODY = 0;
export const ROLE_REPLY = 1;
export const ROLE_NOTIFY = 2;

/** One right as it travels: its kind, role, descriptors and (send-once) id. */
export interface WireRight {
  kind: number;
  role: number;
  fds: number[];
  onceId: number;
}

/** A message as it travels. */
export interface WirePacket {
  flags: number;
  id: number;
  slot: number;
  onceId: number;
  body: Uint8Array;
  rights: WireRight[];
}

/** A received packet with the kernel's word on its sender. */
export interface ReceivedPacket extends WirePacket {
  pid: number;
  uid: number;
  gid: number;
}

/** A connected SOCK_SEQPACKET pair, non-blocking and close-on-exec: [receive end, send end]. */
export function seqpacketPair(what: string): [number, number] {
  const fds = new Int32Array(2);
  check(
    "socketpair",
    libc().symbols.socketpair(
      C.AF_UNIX,
      C.SOCK_SEQPACKET | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
      0,
      new Uint8Array(fds.buffer),
    ),
    what,
  );
  try {
    passCredentials(fds[0], what);
  } catch (error) {
    libc().symbols.close(fds[0]);
    libc().symbols.close(fds[1]);
    throw error;
  }
  return [fds[0], fds[1]];
}

/** Sets SO_PASSCRED: packets received on `fd` then carry the sender's credentials. */
export function passCredentials(fd: number, what: string): void {
  const on = new Int32Array([1]);
  check(
    "setsockopt",
    libc().symbols.setsockopt(fd, C.SOL_SOCKET, C.SO_PASSCRED, new Uint8Array(on.buffer), 4),
    what,
  );
}

/** Closes descriptors, ignoring errors (they are ours and open). */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) if (fd >= 0) libc().symbols.close(fd);
}

/** dup(2) with close-on-exec. */
export function dupFd(fd: number, what: string): number {
  return check("fcntl", libc().symbols.fcntl(fd, C.F_DUPFD_CLOEXEC, 0), what);
}

/**
 * Which of `fds` poll(2) reports (without waiting) with any of `events` or POLLHUP/ERR/NVAL:
 * the returned array holds revents per descriptor.
 */
export function pollNow(fds: readonly number[], events: readonly number[]): Int16Array {
  const pollfds = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    pollfds[2 * i] = fd;
    pollfds[2 * i + 1] = events[i];
  });
  if (fds.length > 0) {
    const bytes = new Uint8Array(pollfds.buffer);
    // EINTR: a signal arrived (a profiler's, say); nothing was reported, ask again.
    while (libc().symbols.poll(bytes, BigInt(fds.length), 0) < 0) {
      if (lastErrno() !== ERRNO.EINTR) check("poll", -1);
    }
  }
  const revents = new Int16Array(fds.length);
  for (let i = 0; i < fds.length; i++) revents[i] = pollfds[2 * i + 1] >>> 16;
  return revents;
}

/** Waits on a pool thread, at most `ms`, until one of `fds` is ready for its events. */
export async function pollAny(
  fds: readonly number[],
  events: readonly number[],
  ms: number,
): Promise<void> {
  const pollfds = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    pollfds[2 * i] = fd;
    pollfds[2 * i + 1] = events[i];
  });
  await libc().symbols.poll_async(
    new Uint8Array(pollfds.buffer),
    BigInt(fds.length),
    Math.max(0, Math.ceil(ms)),
  );
}

/** Whether the peer of a connected socket end has gone (POLLHUP). */
export function peerGone(fd: number): boolean {
  return (pollNow([fd], [0])[0] & (C.POLLHUP | C.POLLERR)) !== 0;
}

function pointerOf(buffer: Uint8Array): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
}

/** The outcome of one non-waiting send. */
export type SendOutcome = "sent" | "would-block" | "dead";

/** Builds and sends packets; one per handle so its buffers are reused. */
export class PacketSender {
  // Header, descriptors, and a small body copied in: one iovec, no pointer lookup.
  readonly #header = new Uint8Array(
    HEADER_SIZE + (MAX_RIGHTS + 2) * DESCRIPTOR_SIZE + SMALL_BODY,
  );
  readonly #headerView = new DataView(this.#header.buffer);
  readonly #headerAddress = pointerOf(this.#header);
  readonly #iov = new BigUint64Array(4);
  readonly #iovBytes = new Uint8Array(this.#iov.buffer);
  readonly #msghdr = new BigUint64Array(C.SIZEOF_MSGHDR / 8);
  readonly #msghdrBytes = new Uint8Array(this.#msghdr.buffer);
  readonly #control = new Uint8Array(CONTROL_SIZE);
  readonly #controlView = new DataView(this.#control.buffer);

  constructor() {
    this.#msghdr[2] = pointerOf(this.#iovBytes);
    this.#iov[0] = this.#headerAddress;
  }

  /** One sendmsg(2) that never waits; throws for errors other than "full" and "dead". */
  send(fd: number, packet: WirePacket, what: string): SendOutcome {
    const { rights, body } = packet;
    const fds = rights.flatMap((right) => right.fds);
    const view = this.#headerView;
    const headerLength = HEADER_SIZE + rights.length * DESCRIPTOR_SIZE;
    view.setUint32(0, MAGIC, true);
    view.setUint16(4, packet.flags, true);
    view.setUint16(6, rights.length, true);
    view.setInt32(8, packet.id, true);
    view.setInt32(12, packet.slot, true);
    view.setUint32(16, packet.onceId, true);
    view.setUint32(20, body.length, true);
    view.setUint32(24, fds.length, true);
    view.setUint32(28, 0, true);
    rights.forEach((right, i) => {
      const at = HEADER_SIZE + i * DESCRIPTOR_SIZE;
      view.setUint8(at, right.kind);
      view.setUint8(at + 1, right.role);
      view.setUint16(at + 2, right.fds.length, true);
      view.setUint32(at + 4, right.onceId, true);
    });
    let iovCount = 1n;
    if (body.length <= SMALL_BODY) {
      this.#header.set(body, headerLength);
      this.#iov[1] = BigInt(headerLength + body.length);
    } else {
      this.#iov[1] = BigInt(headerLength);
      this.#iov[2] = pointerOf(body);
      this.#iov[3] = BigInt(body.length);
      iovCount = 2n;
    }
    this.#msghdr[3] = iovCount;
    if (fds.length > 0) {
      const length = C.SIZEOF_CMSGHDR + 4 * fds.length;
      const control = this.#controlView;
      control.setBigUint64(0, BigInt(length), true);
      control.setInt32(8, C.SOL_SOCKET, true);
      control.setInt32(12, C.SCM_RIGHTS, true);
      fds.forEach((descriptor, i) => control.setInt32(C.SIZEOF_CMSGHDR + 4 * i, descriptor, true));
      this.#msghdr[4] = pointerOf(this.#control);
      this.#msghdr[5] = BigInt((length + 7) & ~7);
    } else {
      this.#msghdr[4] = 0n;
      this.#msghdr[5] = 0n;
    }
    const flags = C.MSG_DONTWAIT | C.MSG_NOSIGNAL;
    let sent = libc().symbols.sendmsg(fd, this.#msghdrBytes, flags);
    if (sent < 0 && !errnoBelieved("sendmsg")) {
      sent = libc().symbols.sendmsg(fd, this.#msghdrBytes, flags);
    }
    if (sent >= 0) return "sent";
    const errno = lastErrno();
    if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return "would-block";
    if (errno === ERRNO.EPIPE || errno === ERRNO.ECONNRESET || errno === ERRNO.ENOTCONN) {
      return "dead";
    }
    throw errnoError(errno, "sendmsg", { objectName: what });
  }
}

/** Receives packets; one per receive right so its buffers are reused. */
export class PacketReceiver {
  readonly #buffer = new Uint8Array(MAX_PACKET);
  readonly #view = new DataView(this.#buffer.buffer);
  readonly #iov = new BigUint64Array(2);
  readonly #msghdr = new BigUint64Array(C.SIZEOF_MSGHDR / 8);
  readonly #msghdrBytes = new Uint8Array(this.#msghdr.buffer);
  readonly #control = new Uint8Array(CONTROL_SIZE);
  readonly #controlView = new DataView(this.#control.buffer);

  constructor() {
    this.#iov[0] = pointerOf(this.#buffer);
    this.#iov[1] = BigInt(MAX_PACKET);
    this.#msghdr[2] = pointerOf(new Uint8Array(this.#iov.buffer));
    this.#msghdr[3] = 1n;
    this.#msghdr[4] = pointerOf(this.#control);
  }

  /**
   * One recvmsg(2) that never waits: a packet, `undefined` when none is queued, or
   * `null` when the peer closed the connection (only if `endPossible`). A packet that fails
   * validation has its descriptors closed and throws CorruptedError (it is consumed).
   */
  receive(fd: number, what: string, endPossible = true): ReceivedPacket | undefined | null {
    this.#msghdr[5] = BigInt(CONTROL_SIZE);
    this.#msghdr[6] = 0n;
    const receiveFlags = C.MSG_DONTWAIT | C.MSG_CMSG_CLOEXEC;
    let length = libc().symbols.recvmsg(fd, this.#msghdrBytes, receiveFlags);
    if (length < 0 && !errnoBelieved("recvmsg")) {
      length = libc().symbols.recvmsg(fd, this.#msghdrBytes, receiveFlags);
    }
    if (length < 0) {
      const errno = lastErrno();
      if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return undefined;
      throw errnoError(errno, "recvmsg", { objectName: what });
    }
    // Control messages first: the descriptors are ours now, whatever else is wrong.
    const fds: number[] = [];
    let credentials: [number, number, number] | undefined;
    const controlLength = Number(this.#msghdr[5]);
    const control = this.#controlView;
    let at = 0;
    while (at + C.SIZEOF_CMSGHDR <= controlLength) {
      const cmsgLength = Number(control.getBigUint64(at, true));
      if (cmsgLength < C.SIZEOF_CMSGHDR || at + cmsgLength > controlLength) break;
      const level = control.getInt32(at + 8, true);
      const type = control.getInt32(at + 12, true);
      const data = at + C.SIZEOF_CMSGHDR;
      if (level === C.SOL_SOCKET && type === C.SCM_RIGHTS) {
        for (let i = data; i + 4 <= at + cmsgLength; i += 4) fds.push(control.getInt32(i, true));
      } else if (level === C.SOL_SOCKET && type === C.SCM_CREDENTIALS) {
        credentials = [
          control.getInt32(data, true),
          control.getUint32(data + 4, true),
          control.getUint32(data + 8, true),
        ];
      }
      at += (cmsgLength + 7) & ~7;
    }
    // An empty read is the end of a connection; on a port (whose receive right holds a
    // send end itself, so it never ends) it is an empty packet some sender made.
    if (length === 0 && fds.length === 0 && endPossible) return null;
    const flags = Number(this.#msghdr[6] & 0xffff_ffffn);
    const corrupt = (field: string, detail: string): never => {
      closeAll(fds);
      throw CorruptedError.of("Mach message on port", what, field, detail);
    };
    if ((flags & (C.MSG_TRUNC | C.MSG_CTRUNC)) !== 0) {
      corrupt("packet", "larger than any message deno-ipc sends");
    }
    if (credentials === undefined) corrupt("credentials", "missing (SO_PASSCRED is off?)");
    const view = this.#view;
    if (length < HEADER_SIZE || view.getUint32(0, true) !== MAGIC) {
      corrupt("header", `of ${length} bytes without the magic number`);
    }
    const packetFlags = view.getUint16(4, true);
    const rightCount = view.getUint16(6, true);
    const bodyLength = view.getUint32(20, true);
    const fdCount = view.getUint32(24, true);
    if ((packetFlags & ~KNOWN_FLAGS) !== 0) corrupt("flags", `0x${packetFlags.toString(16)}`);
    if (rightCount > MAX_RIGHTS + 2) corrupt("right count", String(rightCount));
    const headerLength = HEADER_SIZE + rightCount * DESCRIPTOR_SIZE;
    if (headerLength + bodyLength !== length) {
      corrupt("body length", `${bodyLength} in a packet of ${length} bytes`);
    }
    if (fdCount !== fds.length) {
      corrupt("descriptor count", `${fdCount} announced, ${fds.length} received`);
    }
    const rights: WireRight[] = [];
    let next = 0;
    for (let i = 0; i < rightCount; i++) {
      const base = HEADER_SIZE + i * DESCRIPTOR_SIZE;
      const kind = view.getUint8(base);
      const role = view.getUint8(base + 1);
      const count = view.getUint16(base + 2, true);
      if (FDS_PER_KIND[kind] !== count) corrupt("right kind", `${kind} with ${count} descriptors`);
      if (role > ROLE_NOTIFY) corrupt("right role", String(role));
      if (next + count > fds.length) corrupt("right descriptors", "more than were received");
      rights.push({
        kind,
        role,
        fds: fds.slice(next, next + count),
        onceId: view.getUint32(base + 4, true),
      });
      next += count;
    }
    if (next !== fds.length) corrupt("right descriptors", "fewer than were received");
    return {
      flags: packetFlags,
      id: view.getInt32(8, true),
      slot: view.getInt32(12, true),
      onceId: view.getUint32(16, true),
      body: this.#buffer.slice(headerLength, headerLength + bodyLength),
      rights,
      pid: credentials![0],
      uid: credentials![1],
      gid: credentials![2],
    };
  }
}

// The on-disk format of a file log (lib/file_log.ts), and directory helpers.
//
// A log is a directory:
//   lock                      appenders hold an exclusive F_OFD_SETLK on its byte 0
//   00000000000000000000.seg  segments, each named by the sequence number of its first record
//   cursors/NAME              named reader cursors
//
// A record is a 24-byte header and the payload:
//   0  u32 magic "LOG1"     8  u64 sequence number     20 u32 CRC-32C of bytes 0..20
//   4  u32 payload length   16 u32 CRC-32C of the payload
// The header's own checksum lets a reader trust a length before the payload is all
// there: a complete header whose record runs past the end of the file is a record being
// written (or torn by a writer's death), never a corrupted length; that one fails the
// header checksum.
// A cursor file is 24 bytes: u32 magic "CUR1", u32 zero, u64 next sequence number,
// u32 CRC-32C of bytes 0..16, u32 zero. Integers are little-endian.
import { C, ERRNO } from "../ffi/constants.ts";
import { check, CorruptedError, ErrnoError, errnoError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { crc32c } from "./_crc32c.ts";
import { preadFully } from "./_file.ts";
import { allocateMessage } from "./_pool.ts";
import { cString } from "./_validate.ts";

/** Bytes of a record header. */
export const HEADER_SIZE = 24;
/** "LOG1" as a little-endian u32. */
export const RECORD_MAGIC = 0x31474f4c;
/** "CUR1" as a little-endian u32. */
export const CURSOR_MAGIC = 0x31525543;
/** Bytes of a cursor file. */
export const CURSOR_SIZE = 24;
/** Name of the lock file inside a log directory. */
export const LOCK_FILE = "lock";
/** Only FileLog has it: a reader is made by `FileLog.reader()`, never by `new`. */
export const READER_KEY: unique symbol = Symbol("FileLog.reader");
/** Name of the cursor directory inside a log directory. */
export const CURSOR_DIRECTORY = "cursors";

const SEGMENT_NAME = /^(\d{20})\.seg$/;

/** The file name of the segment whose first record has sequence number `first`. */
export function segmentName(first: number): string {
  return `${String(first).padStart(20, "0")}.seg`;
}

/** The first sequence number of a segment file name, or undefined if it is not one. */
export function parseSegmentName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (!match) return undefined;
  const first = Number(match[1]);
  return Number.isSafeInteger(first) ? first : undefined;
}

/** Writes record headers and payloads for `records`, numbered from `first`, into one buffer. */
export function encodeRecords(records: readonly Uint8Array[], first: number): Uint8Array {
  let total = 0;
  for (const record of records) total += HEADER_SIZE + record.length;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  let at = 0;
  records.forEach((record, i) => {
    view.setUint32(at, RECORD_MAGIC, true);
    view.setUint32(at + 4, record.length, true);
    view.setBigUint64(at + 8, BigInt(first + i), true);
    view.setUint32(at + 16, crc32c(record), true);
    view.setUint32(at + 20, crc32c(bytes.subarray(at, at + 20)), true);
    bytes.set(record, at + HEADER_SIZE);
    at += HEADER_SIZE + record.length;
  });
  return bytes;
}

/** A record header as read, not yet trusted. */
export interface Header {
  length: number;
  sequence: number;
  crc: number;
}

/**
 * Decodes a header; returns a description of what is wrong instead when the magic, the
 * reserved word, the length bound or the sequence number does not hold.
 */
export function decodeHeader(
  header: Uint8Array,
  expectedSequence: number,
  maxRecordSize: number,
): Header | string {
  const view = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
  if (view.getUint32(20, true) !== crc32c(header.subarray(0, 20))) return "bad header checksum";
  if (view.getUint32(0, true) !== RECORD_MAGIC) return "bad record magic";
  const length = view.getUint32(4, true);
  if (length > maxRecordSize) {
    return `record length ${length} exceeds the maximum record size ${maxRecordSize}`;
  }
  const sequence = view.getBigUint64(8, true);
  if (sequence !== BigInt(expectedSequence)) {
    return `sequence number ${sequence} where ${expectedSequence} was expected`;
  }
  return { length, sequence: expectedSequence, crc: view.getUint32(16, true) };
}

/** Whether `payload` matches the header's CRC-32C. */
export function checksumMatches(payload: Uint8Array, crc: number): boolean {
  return crc32c(payload) === crc;
}

/** The 24 bytes of a cursor at `next`. */
export function encodeCursor(next: number): Uint8Array {
  const bytes = new Uint8Array(CURSOR_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, CURSOR_MAGIC, true);
  view.setBigUint64(8, BigInt(next), true);
  view.setUint32(16, crc32c(bytes.subarray(0, 16)), true);
  return bytes;
}

/** The next sequence number a cursor file holds; CorruptedError if it does not check out. */
export function decodeCursor(bytes: Uint8Array, length: number, name: string): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, CURSOR_SIZE);
  const next = length === CURSOR_SIZE ? view.getBigUint64(8, true) : -1n;
  if (
    length !== CURSOR_SIZE || view.getUint32(0, true) !== CURSOR_MAGIC ||
    view.getUint32(16, true) !== crc32c(bytes.subarray(0, 16)) ||
    next > BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    throw corrupted(name, `cursor file of ${length} bytes does not check out`);
  }
  return Number(next);
}

/** A CorruptedError about `name`. */
export function corrupted(name: string, detail: string): CorruptedError {
  return new CorruptedError(ERRNO.EBADMSG, "read", {
    objectName: name,
    message: `Corrupted file log data in "${name}": ${detail}`,
  });
}

/** Names in the directory `dirFd` (through a fresh descriptor, so no shared position). */
export function listDirectory(dirFd: number, name: string): string[] {
  const { symbols } = libc();
  const fd = check(
    "openat",
    symbols.openat(dirFd, cString("."), C.O_RDONLY | C.O_DIRECTORY | C.O_CLOEXEC, 0),
    name,
  );
  const dir = symbols.fdopendir(fd);
  if (dir === null) {
    const errno = lastErrno();
    symbols.close(fd);
    throw errnoError(errno, "fdopendir", { objectName: name });
  }
  const names: string[] = [];
  try {
    for (let entry = symbols.readdir(dir); entry !== null; entry = symbols.readdir(dir)) {
      const entryName = Deno.UnsafePointerView.getCString(entry, C.DIRENT_OFFSET_NAME);
      if (entryName !== "." && entryName !== "..") names.push(entryName);
    }
  } finally {
    symbols.closedir(dir);
  }
  return names;
}

/** First sequence numbers of the segments in `dirFd`, ascending. */
export function listSegments(dirFd: number, name: string): number[] {
  return listDirectory(dirFd, name).map(parseSegmentName)
    .filter((first): first is number => first !== undefined).sort((a, b) => a - b);
}

/** Test hooks: lets a test child die inside an append (see tests/children/log_child.ts). */
export const testHooks: {
  /** Called with the bytes of an append under the lock; returns how many to write before dying. */
  cutAppend?: (length: number) => number | undefined;
} = {};

/** Permission bits of a directory holding files of `mode`: x where r is granted. */
export function directoryMode(mode: number): number {
  return mode | ((mode & 0o444) >> 2);
}

/** fdatasync(2) off the main thread; its errno is lost there, so a failure is EIO. */
export async function syncToDisk(fd: number, name: string): Promise<void> {
  if (await libc().symbols.fdatasync_async(fd) !== 0) {
    throw new ErrnoError(ERRNO.EIO, "fdatasync", { objectName: name });
  }
}

/** Opens segment `first` in `dirFd`, or returns -1 if there is none. */
export function tryOpenSegment(dirFd: number, first: number, flags: number, name: string): number {
  const fd = libc().symbols.openat(
    dirFd,
    cString(segmentName(first)),
    // O_NONBLOCK: a FIFO planted under a segment's name must not block this thread in
    // open(2) (the type check that follows refuses it).
    flags | C.O_NOFOLLOW | C.O_CLOEXEC | C.O_NONBLOCK,
    0,
  );
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === ERRNO.ENOENT) return -1;
  throw errnoError(errno, "openat", { objectName: `${name}/${segmentName(first)}` });
}

/** A CorruptedError for what a scan found wrong at `offset` of `segment`. */
export function scanError(segment: string, offset: number, detail: string): ErrnoError {
  return errnoError(ERRNO.EBADMSG, "read", {
    objectName: segment,
    message: `Corrupted file log data in "${segment}" at offset ${offset}: ${detail}`,
  });
}

/** A record read at `offset`: its payload and where the next record starts. */
export interface ReadRecord {
  data: Uint8Array;
  end: number;
}

const headerBuffer = new Uint8Array(HEADER_SIZE);

/**
 * Reads and checks the record at `offset` of segment `fd`, whose size was `size`:
 * the record, `undefined` if it is not all there (being written, or torn), or what is
 * wrong with it. Lengths are checked against `maxRecordSize` and the file size before
 * anything is allocated.
 */
export function readRecordAt(
  fd: number,
  offset: number,
  expectedSequence: number,
  size: number,
  maxRecordSize: number,
  name: string,
): ReadRecord | undefined | string {
  if (offset + HEADER_SIZE > size) return undefined;
  if (preadFully(fd, headerBuffer, offset, name) < HEADER_SIZE) return undefined;
  const header = decodeHeader(headerBuffer, expectedSequence, maxRecordSize);
  if (typeof header === "string") return header;
  const end = offset + HEADER_SIZE + header.length;
  if (end > size) return undefined;
  const data = allocateMessage(header.length);
  if (preadFully(fd, data, offset + HEADER_SIZE, name) < header.length) return undefined;
  if (!checksumMatches(data, header.crc)) return "payload checksum mismatch";
  return { data, end };
}

/** The position a cursor file in directory `cursorsFd` holds, or undefined if unreadable. */
export function readCursorFile(cursorsFd: number, name: string): number | undefined {
  const { symbols } = libc();
  const fd = symbols.openat(
    cursorsFd,
    cString(name),
    C.O_RDONLY | C.O_NOFOLLOW | C.O_CLOEXEC | C.O_NONBLOCK,
    0,
  );
  if (fd < 0) return undefined;
  try {
    const bytes = new Uint8Array(CURSOR_SIZE);
    return decodeCursor(bytes, preadFully(fd, bytes, 0, name), name);
  } catch {
    return undefined;
  } finally {
    symbols.close(fd);
  }
}

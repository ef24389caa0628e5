// The registry of filesystem endpoints the library made: FIFOs (Fifo.create) and Unix
// socket files (a listening FramedServer / RpcServer / Matchmaker). The library does not
// choose where they live, so the lister (lib/introspect.ts) cannot find them by looking
// in one directory: each one made is recorded here, and its record is removed with it.
//
// Registry: /tmp/deno-ipc-endpoints-UID, a directory of this user with mode 0700 (an
// existing one of another owner, a link, or one with group/other access is refused:
// nothing is recorded then). One file per endpoint, named by a hash of its absolute path
// (FNV-1a 64, hex, ".json"), holding one line of JSON:
//   {"version":1,"kind":"fifo"|"unix-socket","path":"/abs/path","creator":"<token>",
//    "pid":N,"uid":N,"created":<ms since the epoch>,"device":"<st_dev>","inode":"<st_ino>"}
// `creator` is the process token (pid + start time, lib/_process.ts) as a decimal string.
// The directory is removed when its last record is: a process that finds it gone while
// recording makes it again.
//
// Recording is best effort: a full disk or a refused directory never fails the create.
// Records are untrusted input when read: each is validated, and the file it names is
// removed only when it is (by lstat) a FIFO or socket of this user with the recorded
// device and inode, whose creator is dead and that no live process uses.
import { C, ERRNO } from "../ffi/constants.ts";
import { lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { currentPid, currentProcessToken } from "./_process.ts";
import { cString } from "./_validate.ts";

/** Kinds of endpoint the registry records. */
export const ENDPOINT_KINDS: readonly string[] = ["fifo", "unix-socket"];
/** Format version of a record. */
export const ENDPOINT_RECORD_VERSION = 1;
/** Largest record file read: a bigger one is reported, not read. */
export const ENDPOINT_RECORD_MAX = 4096;

/** One endpoint record, validated. */
export interface EndpointRecord {
  kind: "fifo" | "unix-socket";
  path: string;
  creator: bigint;
  pid: number;
  uid: number;
  created: number;
  device: bigint;
  inode: bigint;
}

/** A file of the registry: its record, or what is wrong with it. */
export interface RegistryEntry {
  /** Path of the record file. */
  file: string;
  record: EndpointRecord | undefined;
  problem: string | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// Endpoints this process recorded (absolute path -> inode). An endpoint removed other
// than through the library (rm, a removed temporary directory) leaves a stale record: at
// exit ("unload") this process removes the records of its endpoints that are gone.
const recorded = new Map<string, bigint>();
let pruneAtExit = false;

/** The registry directory of this user. */
export function registryDirectory(): string {
  return `/tmp/deno-ipc-endpoints-${libc().symbols.geteuid()}`;
}

/** The record file name of `path` (an absolute path). */
export function recordName(path: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of encoder.encode(path)) {
    hash = BigInt.asUintN(64, (hash ^ BigInt(byte)) * 0x100000001b3n);
  }
  return `${hash.toString(16).padStart(16, "0")}.json`;
}

/** lstat(2): type bits, uid, device and inode, or undefined when it cannot be read. */
export function lstatEndpoint(
  path: string,
): { type: number; mode: number; uid: number; device: bigint; inode: bigint } | undefined {
  const stat = new Uint8Array(C.SIZEOF_STAT);
  const { symbols } = libc();
  if (symbols.fstatat(C.AT_FDCWD, cString(path), stat, C.AT_SYMLINK_NOFOLLOW) !== 0) {
    return undefined;
  }
  const view = new DataView(stat.buffer);
  return {
    type: view.getUint32(C.STAT_OFFSET_MODE, true) & C.S_IFMT,
    mode: view.getUint32(C.STAT_OFFSET_MODE, true) & 0o7777,
    uid: view.getUint32(C.STAT_OFFSET_UID, true),
    device: view.getBigUint64(C.STAT_OFFSET_DEV, true),
    inode: view.getBigUint64(C.STAT_OFFSET_INO, true),
  };
}

/** The type bits an endpoint of `kind` has. */
export function endpointType(kind: string): number {
  return kind === "fifo" ? C.S_IFIFO : C.S_IFSOCK;
}

// Makes the directory (0700) or checks the existing one: a directory of this user
// without group/other access. False when it cannot be used.
function ensureRegistry(directory: string): boolean {
  const { symbols } = libc();
  if (symbols.mkdirat(C.AT_FDCWD, cString(directory), 0o700) !== 0) {
    if (lastErrno() !== ERRNO.EEXIST) return false;
  }
  const stat = new Uint8Array(C.SIZEOF_STAT);
  if (symbols.fstatat(C.AT_FDCWD, cString(directory), stat, C.AT_SYMLINK_NOFOLLOW) !== 0) {
    return false;
  }
  const view = new DataView(stat.buffer);
  const mode = view.getUint32(C.STAT_OFFSET_MODE, true);
  return (mode & C.S_IFMT) === C.S_IFDIR && (mode & 0o077) === 0 &&
    view.getUint32(C.STAT_OFFSET_UID, true) === symbols.geteuid();
}

function absolute(path: string): string | undefined {
  if (path.startsWith("/")) return path;
  // getcwd(3) through FFI: Deno.cwd() would need (or prompt for) read permission.
  const buffer = new Uint8Array(4097);
  if (libc().symbols.getcwd(buffer, BigInt(buffer.length)) === null) return undefined;
  const end = buffer.indexOf(0);
  return `${decoder.decode(buffer.subarray(0, end < 0 ? buffer.length : end))}/${path}`;
}

/**
 * Records an endpoint this process just made at `path` (best effort: never throws).
 * Its device and inode are read now, so that a later removal can tell it from a file put
 * there since.
 */
export function recordEndpoint(kind: "fifo" | "unix-socket", path: string): void {
  try {
    const full = absolute(path);
    if (full === undefined) return;
    const status = lstatEndpoint(full);
    if (status === undefined || status.type !== endpointType(kind)) return;
    const text = JSON.stringify({
      version: ENDPOINT_RECORD_VERSION,
      kind,
      path: full,
      creator: currentProcessToken().toString(),
      pid: currentPid(),
      uid: libc().symbols.geteuid(),
      created: Date.now(),
      device: status.device.toString(),
      inode: status.inode.toString(),
    }) + "\n";
    const bytes = encoder.encode(text);
    if (bytes.length > ENDPOINT_RECORD_MAX) return;
    const directory = registryDirectory();
    const { symbols } = libc();
    // The directory may be removed (emptied by another process) between the check and
    // the create: then make it again.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!ensureRegistry(directory)) return;
      const fd = symbols.open(
        cString(`${directory}/${recordName(full)}`),
        C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_NOFOLLOW | C.O_CLOEXEC,
        0o600,
      );
      if (fd < 0) {
        if (lastErrno() === ERRNO.ENOENT) continue;
        return;
      }
      try {
        symbols.write(fd, bytes, BigInt(bytes.length));
      } finally {
        symbols.close(fd);
      }
      recorded.set(full, status.inode);
      if (!pruneAtExit) {
        pruneAtExit = true;
        globalThis.addEventListener("unload", pruneRecorded);
      }
      return;
    }
  } catch {
    // best effort: the endpoint exists, it is only not listed
  }
}

/**
 * Removes the record of `path` (after the endpoint was removed); with `inode`, only a
 * record of that inode (a record another process made since for a new file is kept).
 * Removes the registry directory when it is empty. Never throws.
 */
export function forgetEndpoint(path: string, inode?: bigint): void {
  try {
    const full = absolute(path);
    if (full === undefined) return;
    const directory = registryDirectory();
    const file = `${directory}/${recordName(full)}`;
    recorded.delete(full);
    if (inode !== undefined) {
      const entry = readRecord(file);
      if (entry.record !== undefined && entry.record.inode !== inode) return;
    }
    removeRecordFile(file);
  } catch {
    // best effort
  }
}

/** Removes the records of this process's endpoints that are gone (see `recorded`). */
export function pruneRecorded(): void {
  for (const [path, inode] of [...recorded]) {
    const status = lstatEndpoint(path);
    if (status === undefined || status.inode !== inode) forgetEndpoint(path, inode);
  }
}

/** Removes a record file (only a regular file) and then the directory if empty. */
export function removeRecordFile(file: string): boolean {
  const { symbols } = libc();
  const status = lstatEndpoint(file);
  if (status === undefined || status.type !== C.S_IFREG) return false;
  const removed = symbols.unlinkat(C.AT_FDCWD, cString(file), 0) === 0;
  // Fails (ENOTEMPTY) while other records are there: that is the point.
  symbols.unlinkat(C.AT_FDCWD, cString(registryDirectory()), C.AT_REMOVEDIR);
  return removed;
}

const readBuffer = new Uint8Array(ENDPOINT_RECORD_MAX + 1);

/** Reads and validates one record file (O_NOFOLLOW, a regular file of this user). */
export function readRecord(file: string): RegistryEntry {
  const entry: RegistryEntry = { file, record: undefined, problem: undefined };
  const { symbols } = libc();
  const fd = symbols.open(cString(file), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_CLOEXEC, 0);
  if (fd < 0) {
    entry.problem = `record cannot be opened: errno ${lastErrno()}`;
    return entry;
  }
  let length = 0;
  try {
    const stat = new Uint8Array(C.SIZEOF_STAT);
    if (symbols.fstat(fd, stat) !== 0) {
      entry.problem = `record cannot be read: errno ${lastErrno()}`;
      return entry;
    }
    const view = new DataView(stat.buffer);
    if ((view.getUint32(C.STAT_OFFSET_MODE, true) & C.S_IFMT) !== C.S_IFREG) {
      entry.problem = "record is not a regular file";
      return entry;
    }
    if (view.getUint32(C.STAT_OFFSET_UID, true) !== symbols.geteuid()) {
      entry.problem = `record belongs to uid ${view.getUint32(C.STAT_OFFSET_UID, true)}`;
      return entry;
    }
    const size = Number(view.getBigInt64(C.STAT_OFFSET_SIZE, true));
    if (size > ENDPOINT_RECORD_MAX) {
      entry.problem = `record of ${size} bytes (at most ${ENDPOINT_RECORD_MAX})`;
      return entry;
    }
    while (length < readBuffer.length) {
      const n = symbols.read(fd, readBuffer.subarray(length), BigInt(readBuffer.length - length));
      if (n <= 0) break;
      length += n;
    }
  } finally {
    symbols.close(fd);
  }
  if (length > ENDPOINT_RECORD_MAX) {
    entry.problem = `record over ${ENDPOINT_RECORD_MAX} bytes`;
    return entry;
  }
  const decoded = decodeRecord(decoder.decode(readBuffer.subarray(0, length)));
  if (typeof decoded === "string") entry.problem = decoded;
  else entry.record = decoded;
  return entry;
}

const DECIMAL = /^\d{1,20}$/;

/** Validates a record's text: every field typed and bounded. */
export function decodeRecord(text: string): EndpointRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "record is not JSON";
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return "record is not a JSON object";
  }
  const r = value as Record<string, unknown>;
  if (r.version !== ENDPOINT_RECORD_VERSION) return `record version ${String(r.version)}`;
  if (r.kind !== "fifo" && r.kind !== "unix-socket") return `record kind ${String(r.kind)}`;
  if (
    typeof r.path !== "string" || !r.path.startsWith("/") || r.path.includes("\0") ||
    r.path.length > 4096
  ) {
    return "record path is not an absolute path";
  }
  for (const key of ["creator", "device", "inode"]) {
    if (typeof r[key] !== "string" || !DECIMAL.test(r[key] as string)) {
      return `record ${key} is not a decimal string`;
    }
  }
  for (const key of ["pid", "uid"]) {
    const n = r[key];
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 0xffffffff) {
      return `record ${key} ${String(n)}`;
    }
  }
  const created = r.created;
  if (typeof created !== "number" || !Number.isFinite(created) || created < 0) {
    return `record creation time ${String(created)}`;
  }
  const creator = BigInt.asIntN(64, BigInt(r.creator as string));
  if (BigInt.asUintN(32, creator) !== BigInt(r.pid as number)) {
    return "record creator token does not name its pid";
  }
  return {
    kind: r.kind,
    path: r.path,
    creator,
    pid: r.pid as number,
    uid: r.uid as number,
    created,
    device: BigInt.asUintN(64, BigInt(r.device as string)),
    inode: BigInt.asUintN(64, BigInt(r.inode as string)),
  };
}

/** Every file of the registry, read and validated (none: an empty list). */
export function readRegistry(): RegistryEntry[] {
  const directory = registryDirectory();
  const status = lstatEndpoint(directory);
  const { symbols } = libc();
  if (status === undefined || status.type !== C.S_IFDIR || status.uid !== symbols.geteuid()) {
    return [];
  }
  let names: string[];
  try {
    names = Array.from(Deno.readDirSync(directory), (entry) => entry.name);
  } catch {
    return [];
  }
  return names.sort().map((name) => {
    const entry = readRecord(`${directory}/${name}`);
    if (entry.record !== undefined && recordName(entry.record.path) !== name) {
      return { file: entry.file, record: undefined, problem: "record file name is not its path's" };
    }
    return entry;
  });
}

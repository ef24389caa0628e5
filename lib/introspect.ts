/**
 * Introspection and clean-up: list every IPC object of the machine that the library can
 * open (its own structures, and plain POSIX shared memory, named semaphores, System V and
 * POSIX message queues, and the FIFOs and Unix socket files it made), with who made it, who
 * is attached and whether they are alive;
 * and remove what belongs only to dead processes.
 *
 * Needs `--allow-read` (for /dev/shm, /dev/mqueue and /proc) and `--allow-ffi`.
 *
 * @module
 */
import { C, ERRNO } from "../ffi/constants.ts";
import { ErrnoError, lastErrno, NotFoundError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { DIRECT_LINK, HeaderProblem, MAILBOX_FAMILY, recognise, type ShmKind } from "./_kinds.ts";
import {
  decodeIdentity,
  type Identity,
  KIND_CODES,
  LIFE_BYTES,
  RemovalMark,
  REMOVED,
} from "./_lifecycle.ts";
import { currentPid, processAlive, processExists, tokenAlive, tokenParts } from "./_process.ts";
import { cString } from "./_validate.ts";
import { cleanEndpoints, emptyObject, listEndpoints, RECORD_KIND } from "./_endpoint_objects.ts";
import { ENDPOINT_KINDS } from "./_endpoints.ts";
import { SharedMemory } from "./shared_memory.ts";

/** A process named in an object: its pid and whether it is alive now. */
export interface ProcessState {
  /** Process id. */
  pid: number;
  /** Alive now (same start time as recorded: a reused pid is not taken for it). */
  alive: boolean;
}

/**
 * The state of an object:
 * - `live`: its creator, an attached process, or a process mapping it is alive;
 * - `dead`: its creator and every process attached to it are dead (`cleanupDead` removes it);
 * - `initializing`: an object being created (a temporary name whose creator is alive);
 * - `removing`: a live cleaner marked it and is removing it (a sealed object whose cleaner
 *   died, and which no live process uses, is `dead`: the next clean-up removes it);
 * - `corrupted`: its header or identity block fails validation (see `problem`);
 * - `other-user`: owned by another user: listed, never opened;
 * - `unknown`: a plain kernel object whose creator is not recorded, mapped by nobody.
 */
export type ObjectState =
  | "live"
  | "dead"
  | "initializing"
  | "removing"
  | "corrupted"
  | "other-user"
  | "unknown";

/**
 * One IPC object, as {@link listObjects} reports it. This is also the stable `--json`
 * format of `ipc list` and `ipc inspect` (fields may be added, never renamed).
 */
export interface IpcObject {
  /**
   * `ring`, `mailbox`, `direct-link`, `direct-registry`, `bounded-buffer`,
   * `semaphore-bounded-buffer`, `doorbell` (the library's structures), `shm` (plain
   * POSIX shared memory), `semaphore` (named POSIX semaphore), `sysv-queue`,
   * `posix-queue`, `temporary` (an object being created), `fifo` or `unix-socket` (made by
   * the library, from its endpoint registry), or `endpoint-record` (a registry file that
   * fails validation).
   */
  kind: string;
  /**
   * The name to open it by (`/name`), `sysv:<msqid>` for a System V queue, the absolute
   * path of a FIFO or socket, or the registry file of an `endpoint-record`.
   */
  name: string;
  /** Bytes of the object (queued bytes for queues). */
  size: number;
  /** Owner uid. */
  uid: number;
  /** Permission bits. */
  mode: number;
  /** See {@link ObjectState}. */
  state: ObjectState;
  /** The process that created it, when recorded. */
  creator: (ProcessState & { uid: number }) | null;
  /** Creation time (ISO 8601), when recorded. */
  created: string | null;
  /** Processes with a handle open, from the object's attachment table. */
  attached: ProcessState[];
  /** Handles open beyond the attachment table (not tracked by process). */
  untracked: number;
  /** Live processes that have it mapped now (from /proc/PID/maps; shared memory only). */
  mappedBy: number[];
  /** What waits in it now (see `depthUnit`), when its header says. */
  depth: number | null;
  /** `messages`, `items`, `bytes` or `events`. */
  depthUnit: string | null;
  /** For a mailbox's segment: the mailbox it belongs to. */
  partOf: string | null;
  /** What is wrong with a corrupted object. */
  problem: string | null;
  /** Everything else the header says (capacity, positions, counters, lock holders, ...). */
  details: Record<string, unknown>;
}

/** Every kind {@link listObjects} reports: the library's (KIND_CODES), then plain ones. */
export const OBJECT_KINDS: readonly string[] = [
  ...Object.keys(KIND_CODES),
  "shm",
  "semaphore",
  "sysv-queue",
  "posix-queue",
  "temporary",
  ...ENDPOINT_KINDS,
  RECORD_KIND,
];

/** Options of {@link listObjects}. */
export interface ListOptions {
  /** Only objects of these kinds. */
  kinds?: string[];
  /** Read /proc/PID/maps of every process to find who maps shared memory. Default: true. */
  scanMappings?: boolean;
}

const SHM = "/dev/shm";
const MQUEUE = "/dev/mqueue";
const TEMPORARY = /^\.deno-ipc-init\.(\d+)\.(\d+)\./;
const SEGMENT = /^(.+)\.([0-9a-f]{8})\.(\d+)$/;
const HEADER_MAX = 512;
const HEADER_READS = 3;
const headerBuffer = new Uint8Array(HEADER_MAX);
const lifeBuffer = new Uint8Array(LIFE_BYTES);
const statBuffer = new Uint8Array(256);
const statView = new DataView(statBuffer.buffer);

/**
 * Lists the IPC objects of this machine (in this mount and IPC namespace): the library's
 * structures with their identity, attachments and header; plain POSIX shared memory and
 * named semaphores in /dev/shm; System V message queues; POSIX message queues where
 * /dev/mqueue is mounted. Objects owned by other users are listed (state `other-user`)
 * but not read. A corrupted or half-made object is reported, never thrown.
 *
 * @example Find a ring by name
 * ```ts
 * import { listObjects, MessageRing } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using ring = MessageRing.create({ capacity: 1024 });
 * try {
 *   ring.trySend(new Uint8Array(10));
 *   const found = listObjects({ kinds: ["ring"] }).find((o) => o.name === ring.name)!;
 *   assert.equal(found.state, "live");
 *   assert.equal(found.depth, 24); // one 10-byte message: 8 + 10, rounded to 8
 *   assert.equal(found.attached[0].pid, Deno.pid);
 * } finally {
 *   ring.unlink();
 * }
 * ```
 */
export function listObjects(options: ListOptions = {}): IpcObject[] {
  if (options === null || typeof options !== "object") {
    throw new TypeError("Invalid list options: expected an object");
  }
  const kinds = options.kinds;
  if (kinds !== undefined && (!Array.isArray(kinds) || kinds.some((k) => typeof k !== "string"))) {
    throw new TypeError("Invalid list option kinds: expected an array of strings");
  }
  const mappers = options.scanMappings === false ? new Map<string, number[]>() : scanMappings();
  const euid = libc().symbols.geteuid();
  const objects = [
    ...listShm(mappers),
    ...listSysvQueues(euid),
    ...listPosixQueues(euid),
    ...listEndpoints(),
  ];
  groupSegments(objects);
  objects.sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  return kinds === undefined ? objects : objects.filter((o) => kinds.includes(o.kind));
}

/**
 * Everything known about one object (by name: `/name`, or `sysv:<msqid>`). Throws
 * `NotFoundError` when there is none. POSIX shared memory, named semaphores and POSIX
 * queues have separate namespaces: when several objects have the name, the library's
 * structure (or else the plain shared memory) is the one reported.
 *
 * @example Inspect a mailbox
 * ```ts
 * import { inspectObject, Mailbox } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using box = Mailbox.create({ capacity: 4 });
 * try {
 *   await box.send(new Uint8Array([1]));
 *   const report = inspectObject(box.name);
 *   assert.equal(report.kind, "mailbox");
 *   assert.equal(report.depth, 1);
 *   assert.equal(report.details.capacity, 4);
 * } finally {
 *   box.delete();
 * }
 * ```
 */
export function inspectObject(name: string): IpcObject {
  if (typeof name !== "string" || name.length === 0) {
    throw new TypeError("Invalid object name: expected a non-empty string");
  }
  const rank = (o: IpcObject) => o.kind in KIND_CODES ? 0 : o.kind === "shm" ? 1 : 2;
  const found = listObjects().filter((o) => o.name === name)
    .sort((a, b) => rank(a) - rank(b))[0];
  if (found === undefined) {
    throw new NotFoundError(ERRNO.ENOENT, "inspect", {
      objectName: name,
      message: `No IPC object named "${name}"`,
    });
  }
  return found;
}

// Reads /proc/PID/maps of every process readable to us: which pids map which /dev/shm
// names (named semaphores included: sem_open maps them). This process is left out.
function scanMappings(): Map<string, number[]> {
  const result = new Map<string, number[]>();
  const self = currentPid();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync("/proc")];
  } catch {
    return result;
  }
  for (const entry of entries) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid) || pid === self) continue;
    let text: string;
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/maps`);
    } catch {
      continue; // gone, or not ours to read
    }
    let at = text.indexOf(" /dev/shm/");
    while (at >= 0) {
      const end = text.indexOf("\n", at);
      let path = text.slice(at + 10, end < 0 ? undefined : end);
      if (path.endsWith(" (deleted)")) path = "";
      if (path !== "") {
        const pids = result.get(path) ?? [];
        if (!pids.includes(pid)) pids.push(pid);
        result.set(path, pids);
      }
      at = end < 0 ? -1 : text.indexOf(" /dev/shm/", end);
    }
  }
  return result;
}

function listShm(mappers: Map<string, number[]>): IpcObject[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(SHM)];
  } catch {
    return [];
  }
  const euid = libc().symbols.geteuid();
  const objects: IpcObject[] = [];
  for (const entry of entries) {
    const object = describeShmEntry(entry.name, euid, mappers.get(entry.name) ?? []);
    if (object !== undefined) objects.push(object);
  }
  return objects;
}

// One /dev/shm entry, read with open(O_NOFOLLOW | O_NONBLOCK) + fstat + pread: never
// mapped (a file shrunk meanwhile cannot make us fault), never a FIFO waited on.
function describeShmEntry(
  entry: string,
  euid: number,
  mappedBy: number[],
): IpcObject | undefined {
  const semaphore = entry.startsWith("sem.");
  const temporary = TEMPORARY.exec(entry);
  const object = emptyObject(
    semaphore ? "semaphore" : temporary ? "temporary" : "shm",
    `/${semaphore ? entry.slice(4) : entry}`,
  );
  object.mappedBy = mappedBy;
  const { open, close, fstat } = libc().symbols;
  const fd = open(
    cString(`${SHM}/${entry}`),
    C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_CLOEXEC,
    0,
  );
  if (fd < 0) {
    const errno = lastErrno();
    // Removed since the listing; a symbolic link (shm_open never follows one); a socket.
    if (errno === ERRNO.ENOENT || errno === ERRNO.ELOOP || errno === ERRNO.ENXIO) {
      return undefined;
    }
    object.state = "other-user";
    object.problem = `cannot open: errno ${errno}`;
    try {
      // Its owner, mode and size, as the directory tells them without opening it.
      const info = Deno.lstatSync(`${SHM}/${entry}`);
      if (!info.isFile) return undefined;
      object.uid = info.uid ?? 0;
      object.mode = (info.mode ?? 0) & 0o7777;
      object.size = info.size;
      if (object.uid === euid) object.state = "unknown"; // ours, with a mode we cannot read
    } catch {
      return undefined; // removed since
    }
    return object;
  }
  try {
    if (fstat(fd, statBuffer) !== 0) return undefined;
    const mode = statView.getUint32(C.STAT_OFFSET_MODE, true);
    if ((mode & C.S_IFMT) !== C.S_IFREG) return undefined;
    object.uid = statView.getUint32(C.STAT_OFFSET_UID, true);
    object.mode = mode & 0o7777;
    object.size = Number(statView.getBigInt64(C.STAT_OFFSET_SIZE, true));
    if (temporary) {
      const pid = Number(temporary[1]);
      const alive = processAlive(pid, Number(temporary[2]));
      object.creator = { pid, alive, uid: object.uid };
      object.state = object.uid !== euid ? "other-user" : alive ? "initializing" : "dead";
      return object;
    }
    if (object.uid !== euid) {
      object.state = "other-user";
      return object;
    }
    object.state = mappedBy.length > 0 ? "live" : "unknown";
    if (!semaphore) readStructure(fd, object);
    return object;
  } finally {
    close(fd);
  }
}

function pread(fd: number, buffer: Uint8Array, offset: number): number {
  const n = libc().symbols.pread(fd, buffer, BigInt(buffer.length), BigInt(offset));
  return n < 0 ? 0 : n;
}

// Reads the header of a library structure, and its identity block, into `object`.
function readStructure(fd: number, object: IpcObject): void {
  const length = pread(fd, headerBuffer, 0);
  const header = new DataView(headerBuffer.buffer, 0, length);
  const kind = recognise(header);
  if (kind === undefined) return; // plain shared memory
  object.kind = kind.kind;
  if (length < kind.headerBytes) {
    corrupt(object, `size ${object.size} bytes, smaller than its header`);
    return;
  }
  const lifeOffset = header.getInt32(kind.lifeWord * 4, true);
  let identity: Identity | undefined;
  if (lifeOffset !== 0) {
    if (lifeOffset !== object.size - LIFE_BYTES) {
      corrupt(object, `identity offset ${lifeOffset} in ${object.size} bytes`);
      return;
    }
    const read = pread(fd, lifeBuffer, lifeOffset);
    const decoded = decodeIdentity(lifeBuffer.subarray(0, read));
    if (typeof decoded === "string") {
      corrupt(object, decoded);
      return;
    }
    identity = decoded;
    applyIdentity(object, identity);
  }
  let decoder: ShmKind = kind;
  if (MAILBOX_FAMILY.has(kind.kind) && identity?.kind === "direct-link") {
    decoder = DIRECT_LINK;
    object.kind = "direct-link";
  }
  // A read that a send and a receive cross can pair an old position with a newer one
  // (a mailbox taken past sent): read again before calling the object corrupted.
  for (let attempt = 1;; attempt++) {
    try {
      const report = decoder.decode(header, object.size);
      object.depth = report.depth ?? null;
      object.depthUnit = report.depthUnit ?? null;
      object.details = report.details;
      return;
    } catch (error) {
      if (!(error instanceof HeaderProblem)) throw error;
      if (attempt === HEADER_READS || pread(fd, headerBuffer, 0) < length) {
        corrupt(object, error.message);
        return;
      }
    }
  }
}

function corrupt(object: IpcObject, problem: string): void {
  object.state = "corrupted";
  object.problem = problem;
}

function applyIdentity(object: IpcObject, identity: Identity): void {
  const creator = tokenParts(identity.creatorToken);
  const creatorAlive = identity.creatorToken !== 0n && tokenAlive(identity.creatorToken);
  object.creator = { pid: creator.pid, alive: creatorAlive, uid: identity.uid };
  object.created = new Date(identity.created).toISOString();
  object.attached = identity.slots.map((token) => ({
    pid: tokenParts(token).pid,
    alive: tokenAlive(token),
  }));
  object.untracked = identity.untracked;
  const mark = identity.mark;
  const live = creatorAlive || identity.untracked > 0 ||
    object.attached.some((p) => p.alive) || object.mappedBy.some((pid) => processExists(pid));
  // Sealed (REMOVED) and used by no live process: its cleaner died before removing the
  // name (or is removing it now); the next clean-up finishes the removal.
  if ((mark === REMOVED && live) || (mark !== 0n && mark !== REMOVED && tokenAlive(mark))) {
    object.state = "removing";
    return;
  }
  object.state = live ? "live" : "dead";
}

// A mailbox's segments are rings named <mailbox>.<token>.<index>: they live and die with
// their mailbox (a segment made by a dead process may still hold a live reader's messages).
function groupSegments(objects: IpcObject[]): void {
  const mailboxes = new Map<string, IpcObject>();
  for (const o of objects) if (MAILBOX_FAMILY.has(o.kind)) mailboxes.set(o.name, o);
  for (const o of objects) {
    if (o.kind !== "ring") continue;
    const match = SEGMENT.exec(o.name);
    const parent = match ? mailboxes.get(match[1]) : undefined;
    if (parent === undefined) continue;
    // A mailbox whose header does not decode (corrupted, or torn by a send and a receive
    // during the read) names no token: its segments stay its own, never removed alone.
    const token = parent.details.segmentToken;
    if (token !== undefined && token !== match![2]) continue; // an older mailbox's
    o.partOf = parent.name;
    if (o.state !== "corrupted") o.state = parent.state;
    if (parent.state === "corrupted" && o.problem === null) {
      o.problem = `its mailbox ${parent.name} is corrupted`;
    }
  }
}

// /proc/sysvipc/msg: key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
function listSysvQueues(euid: number): IpcObject[] {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/sysvipc/msg");
  } catch {
    return [];
  }
  const objects: IpcObject[] = [];
  for (const line of text.trim().split("\n").slice(1)) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 11 || f.some((n) => !Number.isFinite(n))) continue;
    const object = emptyObject("sysv-queue", `sysv:${f[1]}`);
    object.size = f[3];
    object.mode = f[2] & 0o777;
    object.uid = f[7];
    if (object.uid !== euid) object.state = "other-user";
    object.depth = f[4];
    object.depthUnit = "messages";
    object.details = {
      key: `0x${(f[0] >>> 0).toString(16).padStart(8, "0")}`,
      msqid: f[1],
      lastSender: f[5] === 0 ? null : { pid: f[5], alive: processExists(f[5]) },
      lastReceiver: f[6] === 0 ? null : { pid: f[6], alive: processExists(f[6]) },
      creatorUid: f[9],
    };
    objects.push(object);
  }
  return objects;
}

function listPosixQueues(euid: number): IpcObject[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(MQUEUE)];
  } catch {
    return []; // not mounted
  }
  const objects: IpcObject[] = [];
  for (const entry of entries) {
    const object = emptyObject("posix-queue", `/${entry.name}`);
    try {
      const info = Deno.lstatSync(`${MQUEUE}/${entry.name}`);
      object.uid = info.uid ?? 0;
      object.mode = (info.mode ?? 0) & 0o7777;
      if (object.uid !== euid) {
        object.state = "other-user";
        objects.push(object);
        continue;
      }
      // "QSIZE:129 NOTIFY:0 SIGNO:0 NOTIFY_PID:0": bytes queued.
      const status = Deno.readTextFileSync(`${MQUEUE}/${entry.name}`);
      const size = /QSIZE:(\d+)/.exec(status);
      object.size = size ? Number(size[1]) : 0;
      const notify = /NOTIFY_PID:(\d+)/.exec(status);
      const pid = notify ? Number(notify[1]) : 0;
      object.details = {
        notifyProcess: pid === 0 ? null : { pid, alive: processExists(pid) },
      };
    } catch {
      continue; // removed since the listing
    }
    objects.push(object);
  }
  return objects;
}

/** Options of {@link cleanupDead}. */
export interface CleanupOptions {
  /** Report what would be removed, remove nothing. Default: false. */
  dryRun?: boolean;
  /** Only objects of these kinds. */
  kinds?: string[];
  /** Only objects with these names. */
  names?: string[];
  /**
   * Also keep every object a live process maps (read from /proc/PID/maps), whatever its
   * attachment table says. Default: true.
   */
  scanMappings?: boolean;
}

/** One object {@link cleanupDead} removed or left, and why. */
export interface CleanupEntry {
  /** See {@link IpcObject.kind}. */
  kind: string;
  /** See {@link IpcObject.name}. */
  name: string;
  /** Why it was (or would be) removed, or kept. */
  reason: string;
}

/** What {@link cleanupDead} did. */
export interface CleanupResult {
  /** Objects removed (with `dryRun`: that would be removed). */
  removed: CleanupEntry[];
  /** Dead-looking objects left in place, and why (in use after all, not ours, ...). */
  kept: CleanupEntry[];
}

/**
 * Removes the objects that belong only to dead processes: the library's structures whose
 * creator and every attached process are dead (mailboxes with their segments), and
 * temporaries of creators that died mid-create, and FIFOs and Unix socket files the library
 * made whose creator is dead and that no live process has open or bound (checked again just
 * before: still that FIFO or socket of this user). Never one a live process uses: each
 * object is marked for removal, then its attachments are checked once more, so an open
 * racing the clean-up either gets the object intact or a `NotFoundError`. Plain kernel
 * objects (whose creator is not recorded) are never removed. Only this user's objects.
 *
 * @example Nothing of a live process is removed
 * ```ts
 * import { cleanupDead, MessageRing } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using ring = MessageRing.create({ capacity: 1024 });
 * try {
 *   const result = cleanupDead({ names: [ring.name] });
 *   assert.deepEqual(result.removed, []);
 * } finally {
 *   ring.unlink();
 * }
 * ```
 */
export function cleanupDead(options: CleanupOptions = {}): CleanupResult {
  if (options === null || typeof options !== "object") {
    throw new TypeError("Invalid cleanup options: expected an object");
  }
  const { dryRun = false, kinds, names } = options;
  if (typeof dryRun !== "boolean") {
    throw new TypeError("Invalid cleanup option dryRun: expected a boolean");
  }
  for (const [key, value] of [["kinds", kinds], ["names", names]] as const) {
    if (
      value !== undefined && (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    ) {
      throw new TypeError(`Invalid cleanup option ${key}: expected an array of strings`);
    }
  }
  const euid = libc().symbols.geteuid();
  const all = listObjects({ scanMappings: options.scanMappings !== false });
  const result: CleanupResult = { removed: [], kept: [] };
  const segmentsOf = new Map<string, IpcObject[]>();
  for (const o of all) {
    if (o.partOf !== null) segmentsOf.set(o.partOf, [...segmentsOf.get(o.partOf) ?? [], o]);
  }
  cleanEndpoints(all.filter((o) => ENDPOINT_KINDS.includes(o.kind)), options, result);
  for (const o of all) {
    if (o.state !== "dead" || o.partOf !== null || ENDPOINT_KINDS.includes(o.kind)) continue;
    if (kinds !== undefined && !kinds.includes(o.kind)) continue;
    if (names !== undefined && !names.includes(o.name)) continue;
    const entry = (reason: string) => ({ kind: o.kind, name: o.name, reason });
    if (o.uid !== euid) {
      result.kept.push(entry("owned by another user"));
      continue;
    }
    const why = o.kind === "temporary"
      ? `half-created by pid ${o.creator?.pid}, which died`
      : `creator pid ${o.creator?.pid} and every attached process are dead`;
    const outcome = dryRun
      ? undefined
      : o.kind === "temporary"
      ? unlinkShm(o.name)
      : removeStructure(o);
    if (outcome !== undefined) {
      result.kept.push(entry(outcome));
      continue;
    }
    result.removed.push(entry(why));
    for (const segment of segmentsOf.get(o.name) ?? []) {
      // No process of a dead mailbox has its segments open: a ring under a segment's
      // name that a live process holds only looks like one.
      if (segment.untracked > 0 || segment.attached.some((p) => p.alive)) {
        result.kept.push({
          kind: segment.kind,
          name: segment.name,
          reason: "named like a segment of a dead mailbox, but a live process has it open",
        });
        continue;
      }
      if (dryRun || unlinkShm(segment.name) === undefined) {
        result.removed.push({
          kind: segment.kind,
          name: segment.name,
          reason: `segment of ${o.name}`,
        });
      }
    }
  }
  return result;
}

function unlinkShm(name: string): string | undefined {
  if (libc().symbols.shm_unlink(cString(name)) === 0) return undefined;
  return lastErrno() === ERRNO.ENOENT
    ? "already removed"
    : `shm_unlink failed: errno ${lastErrno()}`;
}

// Maps the object, marks it, and removes its name only when no live process is attached
// after the mark. Returns why it was kept, or undefined once removed.
function removeStructure(object: IpcObject): string | undefined {
  let shm: SharedMemory;
  try {
    shm = SharedMemory.open({ name: object.name, allowModes: 0o777 });
  } catch (error) {
    if (error instanceof NotFoundError) return "already removed";
    return error instanceof ErrnoError ? error.message : String(error);
  }
  try {
    const length = Math.min(shm.size, HEADER_MAX);
    const header = new DataView(shm.bytes.slice(0, length).buffer);
    const kind = recognise(header);
    if (kind === undefined || length < kind.headerBytes) return "changed since it was listed";
    const mark = RemovalMark.of(shm, header.getInt32(kind.lifeWord * 4, true));
    if (mark === undefined) return "no identity block";
    const identity = decodeIdentity(shm.bytes.slice(shm.size - LIFE_BYTES));
    if (typeof identity === "string") return identity;
    if (identity.creatorToken !== 0n && tokenAlive(identity.creatorToken)) {
      return "its creator is alive";
    }
    if (!mark.tryMark()) return "in use (a live process attached), or another cleaner has it";
    mark.seal();
    // Another cleaner may have removed the name since we mapped the object (when it was
    // sealed already), and another object taken it: remove the name only if it still
    // names the sealed object.
    if (!namesSealed(object.name, identity)) return "already removed";
    return unlinkShm(object.name);
  } finally {
    shm.close();
  }
}

// Whether `name` names a sealed object with this creator and creation time (read with
// open(O_NOFOLLOW | O_NONBLOCK) + pread, as the listing reads).
function namesSealed(name: string, sealed: Identity): boolean {
  const { open, close, fstat } = libc().symbols;
  const fd = open(
    cString(`${SHM}${name}`),
    C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_CLOEXEC,
    0,
  );
  if (fd < 0) return false;
  try {
    if (fstat(fd, statBuffer) !== 0) return false;
    if ((statView.getUint32(C.STAT_OFFSET_MODE, true) & C.S_IFMT) !== C.S_IFREG) return false;
    const size = Number(statView.getBigInt64(C.STAT_OFFSET_SIZE, true));
    if (size < LIFE_BYTES) return false;
    const identity = decodeIdentity(
      lifeBuffer.subarray(0, pread(fd, lifeBuffer, size - LIFE_BYTES)),
    );
    return typeof identity !== "string" && identity.mark === REMOVED &&
      identity.creatorToken === sealed.creatorToken && identity.created === sealed.created;
  } finally {
    close(fd);
  }
}

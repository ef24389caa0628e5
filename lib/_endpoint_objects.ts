// The lister's and the cleaner's side of the endpoint registry (lib/_endpoints.ts): FIFOs
// and Unix socket files the library made, as IpcObjects, and the removal of those whose
// creator is dead and that no live process uses.
import { C } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import {
  type EndpointRecord,
  endpointType,
  lstatEndpoint,
  readRegistry,
  removeRecordFile,
} from "./_endpoints.ts";
import { tokenAlive } from "./_process.ts";
import { cString } from "./_validate.ts";
import type { CleanupOptions, CleanupResult, IpcObject } from "./introspect.ts";

/** Kind of an object made from a registry file that fails validation. */
export const RECORD_KIND = "endpoint-record";

/** An object with nothing known yet but its kind and name (the lister fills it in). */
export function emptyObject(kind: string, name: string): IpcObject {
  return {
    kind,
    name,
    size: 0,
    uid: 0,
    mode: 0,
    state: "unknown",
    creator: null,
    created: null,
    attached: [],
    untracked: 0,
    mappedBy: [],
    depth: null,
    depthUnit: null,
    partOf: null,
    problem: null,
    details: {},
  };
}

// Which processes have each of `paths` open (from /proc/PID/fd links; this process too).
function openers(paths: Set<string>): Map<string, number[]> {
  const result = new Map<string, number[]>();
  if (paths.size === 0) return result;
  let processes: Deno.DirEntry[];
  try {
    processes = [...Deno.readDirSync("/proc")];
  } catch {
    return result;
  }
  for (const entry of processes) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    let fds: Deno.DirEntry[];
    try {
      fds = [...Deno.readDirSync(`/proc/${pid}/fd`)];
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`);
      } catch {
        continue;
      }
      if (!paths.has(target)) continue;
      const pids = result.get(target) ?? [];
      if (!pids.includes(pid)) pids.push(pid);
      result.set(target, pids);
    }
  }
  return result;
}

// Paths of the bound Unix sockets of this network namespace (/proc/net/unix).
function boundSocketPaths(): Set<string> {
  const result = new Set<string>();
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/net/unix");
  } catch {
    return result;
  }
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && fields[7].startsWith("/")) result.add(fields.slice(7).join(" "));
  }
  return result;
}

/** The registry's endpoints as IpcObjects (see lib/_endpoints.ts for the states). */
export function listEndpoints(): IpcObject[] {
  const entries = readRegistry();
  const fifoPaths = new Set<string>();
  for (const e of entries) if (e.record?.kind === "fifo") fifoPaths.add(e.record.path);
  const openBy = openers(fifoPaths);
  const bound = entries.some((e) => e.record?.kind === "unix-socket")
    ? boundSocketPaths()
    : new Set<string>();
  const euid = libc().symbols.geteuid();
  return entries.map((entry) => {
    if (entry.record === undefined) {
      const object = emptyObject(RECORD_KIND, entry.file);
      object.state = "corrupted";
      object.problem = entry.problem ?? "invalid record";
      object.details = { recordFile: entry.file };
      return object;
    }
    return describe(entry.record, entry.file, euid, openBy, bound);
  });
}

function describe(
  record: EndpointRecord,
  file: string,
  euid: number,
  openBy: Map<string, number[]>,
  bound: Set<string>,
): IpcObject {
  const object = emptyObject(record.kind, record.path);
  const creatorAlive = tokenAlive(record.creator);
  object.creator = { pid: record.pid, alive: creatorAlive, uid: record.uid };
  object.created = new Date(record.created).toISOString();
  object.details = {
    recordFile: file,
    device: record.device.toString(),
    inode: record.inode.toString(),
  };
  const status = lstatEndpoint(record.path);
  const stale = status === undefined
    ? "nothing is at its path any more"
    : status.type !== endpointType(record.kind)
    ? `its path now names something that is not a ${record.kind}`
    : status.device !== record.device || status.inode !== record.inode
    ? "its path now names another file"
    : undefined;
  if (stale !== undefined) {
    object.state = "dead";
    object.problem = `stale record: ${stale}`;
    object.details.stale = true;
    return object;
  }
  object.uid = status!.uid;
  object.mode = status!.mode;
  if (object.uid !== euid) {
    object.state = "other-user";
    return object;
  }
  let used = false;
  if (record.kind === "fifo") {
    object.attached = (openBy.get(record.path) ?? []).map((pid) => ({ pid, alive: true }));
    used = object.attached.length > 0;
  } else {
    object.details.bound = bound.has(record.path);
    used = bound.has(record.path);
  }
  object.state = creatorAlive || used ? "live" : "dead";
  return object;
}

/**
 * Removes the dead endpoints among `objects` (from {@link listEndpoints}) into `result`:
 * a stale record alone; a FIFO or socket file only when, checked again just before, it is
 * still the recorded file (type, owner, device, inode), its creator is dead and no live
 * process has it open (FIFO) or bound (socket). Removed relative to its opened directory.
 */
export function cleanEndpoints(
  objects: IpcObject[],
  options: CleanupOptions,
  result: CleanupResult,
): void {
  const { dryRun = false, kinds, names } = options;
  for (const o of objects) {
    if (o.state !== "dead" || o.kind === RECORD_KIND) continue;
    if (kinds !== undefined && !kinds.includes(o.kind)) continue;
    if (names !== undefined && !names.includes(o.name)) continue;
    const file = o.details.recordFile as string;
    const entry = (reason: string) => ({ kind: o.kind, name: o.name, reason });
    if (o.details.stale === true) {
      if (dryRun || removeRecordFile(file)) {
        result.removed.push(entry(`${o.problem} (only its record is removed)`));
      }
      continue;
    }
    const why = `creator pid ${o.creator?.pid} is dead and no live process uses it`;
    if (dryRun) {
      result.removed.push(entry(why));
      continue;
    }
    const kept = removeEndpoint(o);
    if (kept !== undefined) {
      result.kept.push(entry(kept));
      continue;
    }
    removeRecordFile(file);
    result.removed.push(entry(why));
  }
}

// Checks once more and unlinks; returns why it was kept, or undefined once removed.
function removeEndpoint(o: IpcObject): string | undefined {
  const device = BigInt(o.details.device as string);
  const inode = BigInt(o.details.inode as string);
  const path = o.name;
  const type = endpointType(o.kind);
  const euid = libc().symbols.geteuid();
  const status = lstatEndpoint(path);
  if (
    status === undefined || status.type !== type || status.device !== device ||
    status.inode !== inode
  ) {
    return "changed since it was listed";
  }
  if (status.uid !== euid) return "owned by another user";
  if (o.kind === "fifo") {
    const users = openers(new Set([path])).get(path) ?? [];
    if (users.length > 0) return `open in live process ${users.join(", ")}`;
  } else if (boundSocketPaths().has(path)) {
    return "a live process listens on it";
  }
  const { symbols } = libc();
  const slash = path.lastIndexOf("/");
  const directory = slash === 0 ? "/" : path.slice(0, slash);
  const name = cString(path.slice(slash + 1));
  const directoryFd = symbols.open(
    cString(directory),
    C.O_PATH | C.O_DIRECTORY | C.O_CLOEXEC,
    0,
  );
  if (directoryFd < 0) return "its directory cannot be opened";
  try {
    const stat = new Uint8Array(C.SIZEOF_STAT);
    if (symbols.fstatat(directoryFd, name, stat, C.AT_SYMLINK_NOFOLLOW) !== 0) {
      return "already removed";
    }
    const view = new DataView(stat.buffer);
    if (
      (view.getUint32(C.STAT_OFFSET_MODE, true) & C.S_IFMT) !== type ||
      view.getUint32(C.STAT_OFFSET_UID, true) !== euid ||
      view.getBigUint64(C.STAT_OFFSET_DEV, true) !== device ||
      view.getBigUint64(C.STAT_OFFSET_INO, true) !== inode
    ) {
      return "changed since it was listed";
    }
    if (symbols.unlinkat(directoryFd, name, 0) !== 0) return "unlink failed";
    return undefined;
  } finally {
    symbols.close(directoryFd);
  }
}

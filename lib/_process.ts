// Process identity and liveness, for locks and records that must survive a holder's
// death and must not be fooled by a reused pid or a zombie.
//
// A pid alone names a process only while it lives: once it dies, the system may give the
// same number to another process. A process is therefore identified by its pid AND its
// start time (field 22 of /proc/PID/stat, clock ticks since boot), which no later process
// with that pid can share. Liveness is read from /proc with open/read through FFI (no
// Deno read permission needed): a pid that is missing, a zombie (state Z or X), or whose
// start time differs is dead.
import { C, ERRNO } from "../ffi/constants.ts";
import { errnoError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";

let pid: number | undefined;
let startTime: number | undefined;
let token: bigint | undefined;
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const STAT_BUFFER_BYTES = 1024n;
const statBuffer = new Uint8Array(Number(STAT_BUFFER_BYTES));
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const statPaths = new Map<number, Uint8Array<ArrayBuffer>>();

/** Blocks this thread for `ms` milliseconds (for short, rare waits only). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** This process's id (cached: it never changes). */
export function currentPid(): number {
  return pid ??= libc().symbols.getpid();
}

/**
 * This process's start time in clock ticks since boot (cached once read). Throws an
 * ErrnoError (EMFILE, say) when /proc cannot be read now: a guess would make other
 * processes take this one for dead.
 */
export function currentStartTime(): number {
  if (startTime !== undefined) return startTime;
  const stat = readStat(currentPid());
  if (typeof stat !== "object") {
    throw errnoError(stat === GONE ? ERRNO.ESRCH : lastErrno(), "open", {
      objectName: "/proc/self/stat",
    });
  }
  return startTime = stat.startTime;
}

/**
 * This process as one 64-bit value: the pid in the low 32 bits, the low 32 bits of the
 * start time in the high ones. Never 0. Lock words hold it, so that a holder is known by
 * both.
 */
export function currentProcessToken(): bigint {
  return token ??= processToken(currentPid(), currentStartTime());
}

/** The 64-bit token of a process (see {@link currentProcessToken}). */
export function processToken(processId: number, start: number): bigint {
  return BigInt.asIntN(64, (BigInt(start >>> 0) << 32n) | BigInt(processId >>> 0));
}

/** The pid and start time inside a token. */
export function tokenParts(value: bigint): { pid: number; startTime: number } {
  return {
    pid: Number(BigInt.asUintN(32, value)),
    startTime: Number(BigInt.asUintN(32, value >> 32n)),
  };
}

interface ProcessStat {
  state: string;
  startTime: number;
}

// What reading /proc/PID/stat can tell besides the stat itself.
const GONE = "gone"; // no such process
const UNKNOWN = "unknown"; // could not be read now (EMFILE, ENOMEM, ...): not proof of death

// Reads /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so
// fields are counted after its last ')'.
function readStat(processId: number): ProcessStat | typeof GONE | typeof UNKNOWN {
  let path = statPaths.get(processId);
  if (path === undefined) {
    if (statPaths.size > 256) statPaths.clear();
    path = encoder.encode(`/proc/${processId}/stat\0`);
    statPaths.set(processId, path);
  }
  const { open, read, close } = libc().symbols;
  const fd = open(path, C.O_RDONLY | C.O_CLOEXEC, 0);
  if (fd < 0) return goneOrUnknown(lastErrno());
  let length: number;
  try {
    length = read(fd, statBuffer, STAT_BUFFER_BYTES);
    if (length < 0) return goneOrUnknown(lastErrno());
  } finally {
    close(fd);
  }
  if (length === 0) return GONE; // it exited while we opened its entry
  const text = decoder.decode(statBuffer.subarray(0, length));
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const start = Number(fields[19]);
  if (fields[0] === undefined || !Number.isFinite(start)) return UNKNOWN;
  return { state: fields[0], startTime: start };
}

function goneOrUnknown(errno: number): typeof GONE | typeof UNKNOWN {
  return errno === ERRNO.ENOENT || errno === ERRNO.ESRCH ? GONE : UNKNOWN;
}

// kill(pid, 0): whether the process exists at all (EPERM: it exists, not ours).
function signalZero(processId: number): boolean {
  if (libc().symbols.kill(processId, 0) === 0) return true;
  return lastErrno() === ERRNO.EPERM;
}

/**
 * Whether a process with this id exists and is not a zombie. Ids <= 0 name no process
 * (for kill(2) they mean groups or everyone) and are never alive.
 */
export function processExists(processId: number): boolean {
  if (!Number.isInteger(processId) || processId <= 0 || processId > 2 ** 22) return false;
  if (processId === currentPid()) return true;
  const stat = readStat(processId);
  if (stat === GONE) return false;
  if (stat === UNKNOWN) return signalZero(processId);
  return stat.state !== "Z" && stat.state !== "X";
}

/**
 * Whether the process that `startTime` and `processId` identify is alive: it exists, is
 * not a zombie, and started at that time (so a reused pid is not mistaken for it). Only
 * the low 32 bits of the start time are compared, as tokens keep them.
 */
export function processAlive(processId: number, start: number): boolean {
  if (!Number.isInteger(processId) || processId <= 0 || processId > 2 ** 22) return false;
  if (processId === currentPid()) return (start >>> 0) === (currentStartTime() >>> 0);
  const stat = readStat(processId);
  if (stat === GONE) return false;
  // Unreadable now: a process that exists is taken for alive (taking its lock over
  // would be worse than waiting).
  if (stat === UNKNOWN) return signalZero(processId);
  if (stat.state === "Z" || stat.state === "X") return false;
  return (stat.startTime >>> 0) === (start >>> 0);
}

/** The start time of a live process, or undefined when it is dead or a zombie. */
export function processStartTime(processId: number): number | undefined {
  if (!Number.isInteger(processId) || processId <= 0 || processId > 2 ** 22) return undefined;
  const stat = readStat(processId);
  if (typeof stat !== "object" || stat.state === "Z" || stat.state === "X") return undefined;
  return stat.startTime;
}

const statusBuffer = new Uint8Array(4096);

/** The real uid of a live process, read from /proc/PID/status; undefined if gone. */
export function processUid(processId: number): number | undefined {
  if (!Number.isInteger(processId) || processId <= 0 || processId > 2 ** 22) return undefined;
  const { open, read, close } = libc().symbols;
  const fd = open(encoder.encode(`/proc/${processId}/status\0`), C.O_RDONLY | C.O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  let length: number;
  try {
    length = read(fd, statusBuffer, BigInt(statusBuffer.length));
  } finally {
    close(fd);
  }
  const match = /\nUid:\s+(\d+)/.exec(
    decoder.decode(statusBuffer.subarray(0, Math.max(0, length))),
  );
  return match === null ? undefined : Number(match[1]);
}

/** Whether the process a token names is alive (see {@link processAlive}). */
export function tokenAlive(value: bigint): boolean {
  const { pid: processId, startTime: start } = tokenParts(value);
  return processAlive(processId, start);
}

/** How long a lock holder found alive is not looked up again, in milliseconds. */
export const HOLDER_RECHECK_MS = 5;

/**
 * A lock word in shared memory holding its owner's process token (0 when free): a 64-bit
 * word, so the pid and start time are taken and released in one atomic step. It is taken
 * and released only inside synchronous code, so within one process it is never contended;
 * across processes, a holder that died (or is a zombie) while holding it is detected by
 * pid and start time and the lock is taken over.
 */
export class PidLock {
  readonly #words: BigInt64Array;
  readonly #index: number;
  #aliveHolder = 0n;
  #aliveCheckedAt = 0;

  /** The lock is `words[index]`, a 64-bit word. */
  constructor(words: BigInt64Array, index: number) {
    this.#words = words;
    this.#index = index;
  }

  /** Takes the lock if it is free. */
  tryAcquire(): boolean {
    return Atomics.compareExchange(this.#words, this.#index, 0n, currentProcessToken()) === 0n;
  }

  /** Releases the lock. */
  release(): void {
    Atomics.store(this.#words, this.#index, 0n);
  }

  /** Whether any process holds the lock. */
  held(): boolean {
    return Atomics.load(this.#words, this.#index) !== 0n;
  }

  /** The pid of the holder, or 0 when free. */
  holder(): number {
    return tokenParts(Atomics.load(this.#words, this.#index)).pid;
  }

  /**
   * Frees the lock if its holder is dead; returns whether it did. A holder found alive
   * is taken for alive for {@link HOLDER_RECHECK_MS}: waiters call this at every park,
   * and a busy peer holds the lock often, so reading /proc each time (several
   * microseconds) would slow the very exchange being waited for.
   */
  recoverFromDeadHolder(): boolean {
    const holder = Atomics.load(this.#words, this.#index);
    if (holder === 0n || holder === currentProcessToken()) return false;
    const now = performance.now();
    if (holder === this.#aliveHolder && now - this.#aliveCheckedAt < HOLDER_RECHECK_MS) {
      return false;
    }
    if (tokenAlive(holder)) {
      this.#aliveHolder = holder;
      this.#aliveCheckedAt = now;
      return false;
    }
    return Atomics.compareExchange(this.#words, this.#index, holder, 0n) === holder;
  }
}

// Process identity and liveness, for locks that must survive a holder's death.
import { ERRNO } from "../ffi/constants.ts";
import { lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";

let pid: number | undefined;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for `ms` milliseconds (for short, rare waits only). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** This process's id (cached: it never changes). */
export function currentPid(): number {
  return pid ??= libc().symbols.getpid();
}

/**
 * Whether a process with this id exists: kill(pid, 0) succeeds, or fails with EPERM
 * (it exists but is not ours). A zombie (exited, not yet reaped) still counts.
 */
export function processExists(processId: number): boolean {
  if (libc().symbols.kill(processId, 0) === 0) return true;
  return lastErrno() === ERRNO.EPERM;
}

/**
 * A lock word in shared memory holding its owner's pid (0 when free). It is taken and
 * released only inside synchronous code, so within one process it is never contended;
 * across processes, a holder killed while holding it is detected by pid and the lock is
 * taken over (pid reuse within that window is the accepted risk).
 */
export class PidLock {
  readonly #words: Int32Array;
  readonly #index: number;

  /** The lock is `words[index]`. */
  constructor(words: Int32Array, index: number) {
    this.#words = words;
    this.#index = index;
  }

  /** Takes the lock if it is free. */
  tryAcquire(): boolean {
    return Atomics.compareExchange(this.#words, this.#index, 0, currentPid()) === 0;
  }

  /**
   * Takes the lock, spinning while a live holder copies (yielding the CPU now and then,
   * and taking the lock over from a dead holder); false after `maxSpins` attempts.
   */
  acquireSpinning(maxSpins: number): boolean {
    for (let i = 1; !this.tryAcquire(); i++) {
      if (i >= maxSpins) return false;
      if ((i & 63) === 0 && !this.recoverFromDeadHolder()) libc().symbols.sched_yield();
    }
    return true;
  }

  /** Releases the lock. */
  release(): void {
    Atomics.store(this.#words, this.#index, 0);
  }

  /** Whether any process holds the lock. */
  held(): boolean {
    return Atomics.load(this.#words, this.#index) !== 0;
  }

  /** Frees the lock if its holder no longer exists; returns whether it did. */
  recoverFromDeadHolder(): boolean {
    const holder = Atomics.load(this.#words, this.#index);
    if (holder === 0 || holder === currentPid() || processExists(holder)) return false;
    return Atomics.compareExchange(this.#words, this.#index, holder, 0) === holder;
  }
}

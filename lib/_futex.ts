// Cross-process sleeping and waking on a word of shared memory (futex(2)).
//
// The pattern, which cannot lose a wake-up: a waiter sets a flag word to 1, re-checks
// its condition, then sleeps on the flag word while it is still 1. A waker first
// publishes its change, then (Atomics.exchange is a full fence) swaps the flag to 0
// and, if it was 1, wakes everyone sleeping on it. FUTEX_WAIT compares the word and
// sleeps in one step, so a swap between the re-check and the sleep makes it return.
// FUTEX_WAIT (not FUTEX_WAIT_PRIVATE): the sleepers are in other processes.
import { C } from "../ffi/constants.ts";
import { check, closedError, timedOutError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { step } from "./_steps.ts";
import { PENDING, type Pinnable, type Waitable } from "./_wait.ts";

/**
 * FUTEX_WAIT on a pool thread: sleeps at most `ms` while the 32-bit word at `address` is
 * still `expected`. Its result (woken, EAGAIN, ETIMEDOUT, EINTR) is lost on the pool
 * thread and not needed: callers check their condition again.
 */
export async function futexWait(
  address: Deno.PointerObject,
  expected: number,
  ms: number,
): Promise<void> {
  const timeout = new BigInt64Array(2);
  const nanoseconds = BigInt(Math.max(0, Math.ceil(ms * 1e6)));
  timeout[0] = nanoseconds / 1_000_000_000n;
  timeout[1] = nanoseconds % 1_000_000_000n;
  await libc().symbols.futex_wait_async(
    C.SYS_futex,
    address,
    C.FUTEX_WAIT,
    expected,
    timeout,
    null,
    0,
  );
}

/** A flag word in shared memory that waiters sleep on and wakers clear. */
export class FutexFlag {
  readonly #words: Int32Array;
  readonly #index: number;
  readonly #address: Deno.PointerObject;

  /** `words[index]` must be the 4 bytes at `address`. */
  constructor(words: Int32Array, index: number, address: Deno.PointerObject) {
    this.#words = words;
    this.#index = index;
    this.#address = address;
  }

  /** Marks that someone is about to sleep; re-check the condition after this. */
  announce(): void {
    Atomics.store(this.#words, this.#index, 1);
  }

  /**
   * Sleeps on a pool thread while the flag is still set, for at most `ms`. Returns
   * early when woken, and at once when the flag was already cleared. Its errno (EAGAIN,
   * ETIMEDOUT, EINTR) is lost on the pool thread and not needed: the caller re-checks.
   */
  async sleep(ms: number): Promise<void> {
    await futexWait(this.#address, 1, ms);
  }

  /** Wakes every sleeper if the flag was set. Call after publishing a change. */
  wake(): void {
    // The first look is a plain read: Atomics.load costs a builtin call (about 8 ns), and
    // callers wake right after publishing with an Atomics store or read-modify-write,
    // which on x86-64 (the target) is a full fence, so this read cannot pass it.
    if (
      this.#words[this.#index] !== 0 &&
      Atomics.exchange(this.#words, this.#index, 0) !== 0
    ) {
      check(
        "futex_wake",
        libc().symbols.futex_wake(
          C.SYS_futex,
          this.#address,
          C.FUTEX_WAKE,
          C.INT_MAX,
          null,
          null,
          0,
        ),
      );
    }
  }
}

/** What {@link futexWaitable} needs to know. */
export interface FutexWaitableOptions<T> {
  /** The handle's lifetime. */
  lifetime: Pinnable;
  /** For error messages: the operation, the kind of object and its name. */
  operation: string;
  what: string;
  name: string;
  /** One attempt on this thread; PENDING when it cannot complete now. */
  attempt: () => T | typeof PENDING;
  /** The flag this side sleeps on. */
  flag: FutexFlag;
  /** Whether an attempt could complete now (checked after announcing). */
  ready: () => boolean;
  /** Called before the check, e.g. to take over a lock from a dead holder. */
  beforeCheck?: () => void;
}

/**
 * A {@link Waitable} whose park sleeps on a futex flag until `ready()` may have become
 * true, and never completes the operation itself (so nothing needs giving back).
 */
export function futexWaitable<T>(options: FutexWaitableOptions<T>): Waitable<T> {
  const { lifetime, operation, what, name, attempt, flag, ready, beforeCheck } = options;
  return {
    lifetime,
    attempt,
    park: async (ms) => {
      flag.announce();
      step("wait.announced"); // a waker may run between announcing and checking
      beforeCheck?.();
      if (!ready()) {
        step("wait.sleep");
        await flag.sleep(ms);
      }
      return PENDING;
    },
    closedError: () => closedError(operation, what, name),
    timedOutError: (timeoutMs) => timedOutError(operation, what, name, timeoutMs),
  };
}

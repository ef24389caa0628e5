// The one wait loop of deno-ipc. Every blocking operation is
//   1. an attempt on this thread that never waits,
//   2. a short spin of such attempts (cheap: a failed attempt makes no syscall) with a
//      sched_yield(2) every 16 of them, then a few attempts each after sched_yield(2),
//   3. then waits off the main thread, each bounded by SLICE_MS, in a loop that checks
//      the deadline, the AbortSignal and the handle's closed state between slices.
// Bounded slices keep the event loop free and mean a forgotten wait never keeps the
// process alive longer than one slice after it was abandoned.
import { libc } from "../ffi/libc.ts";
import { testing } from "./_testing.ts";
import { validateOptions } from "./_validate.ts";

/** Options accepted by every blocking operation. */
export interface WaitOptions {
  /** Give up after this many milliseconds with a `TimedOutError`. Default: wait forever. */
  timeout?: number;
  /** Stop waiting when this signal aborts; the operation rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Returned by attempts and parks that did not complete. */
export const PENDING: unique symbol = Symbol("pending");

/**
 * Adapts an attempt that returns `undefined` for "not yet" to the wait loop. Any other
 * result, `null` included (EOF, the end of a stream), completes the wait: mapping with
 * `?? PENDING` instead would turn `null` into "not yet" and hang the waiter.
 */
export function untilDefined<T>(attempt: () => T | undefined): () => T | typeof PENDING {
  return () => {
    const result = attempt();
    return result === undefined ? PENDING : result;
  };
}

/**
 * Longest single wait on a pool thread, in milliseconds: 100, or `DENO_IPC_WAIT_SLICE_MS`
 * (1 to 600000) when set and readable. A long slice makes a wait depend on being woken
 * alone: the tests use it to show that no wake-up is lost.
 */
export const SLICE_MS: number = sliceFromEnvironment() ?? 100;

function sliceFromEnvironment(): number | undefined {
  const variable = "DENO_IPC_WAIT_SLICE_MS";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return undefined;
  const value = Number(Deno.env.get(variable));
  return Number.isInteger(value) && value >= 1 && value <= 600_000 ? value : undefined;
}

/** Default number of spinning attempts before waiting off the main thread. */
export const DEFAULT_SPIN = 200;

// A run of parks each shorter than QUICK_PARK_MS makes the loop yield a macrotask.
const QUICK_PARK_MS = 0.02;
const QUICK_PARKS_BEFORE_YIELD = 64;

/** Spinning attempts between two sched_yield(2) calls (see waitFor). */
const SPIN_ATTEMPTS_PER_YIELD = 16;

/** Attempts after a sched_yield(2) each, once the spin is spent. */
const YIELDING_ATTEMPTS = 4;

/** What a handle provides so that {@link waitFor} can wait on it. */
export interface Waitable<T> {
  /** One attempt on this thread that never waits. */
  attempt(): T | typeof PENDING;
  /**
   * Waits off the main thread for at most `ms`; must settle within about that time. A
   * park either completes the operation itself (e.g. sem_clockwait takes the unit) and
   * returns its result, or only waits for a change and returns PENDING, after which the
   * loop makes an attempt on this thread.
   */
  park(ms: number): Promise<T | typeof PENDING>;
  /**
   * Undoes a result a park completed after its caller stopped waiting (e.g. re-posts a
   * unit). Needed only by parks that complete operations.
   */
  giveBack?(result: T): void;
  /** The handle's lifetime: pinned while a park runs, so memory outlives the pool call. */
  lifetime: Pinnable;
  /** The error for a wait ended by close(). */
  closedError(): Error;
  /** The error for a wait that ran out of time. */
  timedOutError(timeoutMs: number): Error;
  /** Attempts to spin before parking. */
  spin?: number;
}

/** What {@link waitFor} needs of a handle's lifetime (see _lifetime.ts). */
export interface Pinnable {
  /** Aborts when the handle closes. */
  readonly closing: AbortSignal;
  /** Keeps the handle's memory mapped. */
  pin(): void;
  /** Ends a pin. */
  unpin(): void;
}

/** Checks {@link WaitOptions} before any syscall. */
export function validateWaitOptions(options: unknown): WaitOptions {
  const { timeout, signal } = validateOptions<WaitOptions>(options, "wait");
  if (timeout !== undefined) {
    if (typeof timeout !== "number" || Number.isNaN(timeout)) {
      throw new TypeError(`Invalid timeout: expected a number of milliseconds`);
    }
    if (timeout < 0) throw new RangeError(`Invalid timeout ${timeout}: it must not be negative`);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Invalid signal: expected an AbortSignal`);
  }
  return { timeout, signal };
}

/** Waits until `waitable` completes, the timeout passes, the signal aborts or it closes. */
export async function waitFor<T>(waitable: Waitable<T>, options: WaitOptions = {}): Promise<T> {
  const { timeout = Infinity, signal } = validateWaitOptions(options);
  const { lifetime } = waitable;
  signal?.throwIfAborted();
  if (lifetime.closing.aborted) throw waitable.closedError();

  let result = waitable.attempt();
  if (result !== PENDING) return result;
  if (timeout > 0) {
    // A sched_yield(2) every SPIN_ATTEMPTS_PER_YIELD attempts: when the peer shares this
    // CPU (the scheduler often puts both sides of an exchange on one) it can only make
    // progress once this side yields, and without these yields every exchange in that
    // state waited out the whole spin (about 30 µs per round trip instead of 8).
    for (let i = testing.spin ?? waitable.spin ?? DEFAULT_SPIN; i > 0; i--) {
      if (i % SPIN_ATTEMPTS_PER_YIELD === 0) libc().symbols.sched_yield();
      result = waitable.attempt();
      if (result !== PENDING) return result;
    }
    // When both processes share one CPU the peer cannot run while we spin; yielding
    // lets it (about 0.5 µs each when nobody else wants the CPU).
    for (let i = testing.spin ?? YIELDING_ATTEMPTS; i > 0; i--) {
      libc().symbols.sched_yield();
      result = waitable.attempt();
      if (result !== PENDING) return result;
    }
  }

  // `abandoned` is set in the same synchronous step that cancels the current slice: a
  // park that completes later sees it and gives its result back (e.g. re-posts a unit
  // it took), while the handle is still pinned so that giving back is memory-safe.
  // Each slice races a fresh cancellation promise: one promise raced by every slice of
  // a long wait would collect a reaction per slice for as long as the wait lasts.
  let abandoned = false;
  let cancellation: unknown;
  let cancelSlice: ((reason: unknown) => void) | undefined;
  const cancel = (reason: unknown) => {
    abandoned = true;
    cancellation = reason;
    cancelSlice?.(reason);
  };
  const onAbort = () => cancel(signal!.reason);
  const onClose = () => cancel(waitable.closedError());
  const park = async (ms: number): Promise<T | typeof PENDING> => {
    lifetime.pin();
    try {
      const parked = await waitable.park(ms);
      if (parked !== PENDING && abandoned) {
        waitable.giveBack!(parked);
        return PENDING;
      }
      return parked;
    } finally {
      lifetime.unpin();
    }
  };

  const deadline = performance.now() + timeout;
  let quickParks = 0;
  signal?.addEventListener("abort", onAbort, { once: true });
  lifetime.closing.addEventListener("abort", onClose, { once: true });
  try {
    while (true) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw waitable.timedOutError(timeout);
      const slice = Promise.withResolvers<never>();
      slice.promise.catch(() => {});
      cancelSlice = slice.reject;
      if (abandoned) throw cancellation;
      const parkedAt = performance.now();
      const outcome = await Promise.race([park(Math.min(remaining, SLICE_MS)), slice.promise]);
      cancelSlice = undefined;
      if (outcome !== PENDING) return outcome;
      // close() or abort may have happened while the park was settling: never touch a
      // released handle.
      if (lifetime.closing.aborted) throw waitable.closedError();
      signal?.throwIfAborted();
      // A park that returned without a result timed out, was woken, or failed with an
      // errno we cannot read (pool thread); an attempt here tells which matters.
      result = waitable.attempt();
      if (result !== PENDING) return result;
      // Parks on the thread pool return through the event loop, so timers and aborts
      // get their turn. A park that keeps settling at once might not: yield a macrotask.
      quickParks = performance.now() - parkedAt < QUICK_PARK_MS ? quickParks + 1 : 0;
      if (quickParks >= QUICK_PARKS_BEFORE_YIELD) {
        quickParks = 0;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    lifetime.closing.removeEventListener("abort", onClose);
  }
}

/** Races `promise` against the options' timeout and signal; the promise keeps running. */
export async function within<T>(
  promise: Promise<T>,
  options: WaitOptions,
  onTimeout: (ms: number) => Error,
): Promise<T> {
  const { timeout, signal } = options;
  if (timeout === undefined && signal === undefined) return await promise;
  signal?.throwIfAborted();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    if (timeout !== undefined && timeout <= 2 ** 31 - 1) {
      timer = setTimeout(() => reject(onTimeout(timeout)), timeout);
    }
    if (signal) {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal!.removeEventListener("abort", onAbort);
  }
}

/**
 * Callers served one at a time, in call order (receives on one connection, sends on one
 * handle). A caller that gives up while waiting passes its turn on only once the caller
 * before it is done, so the one after it never overtakes that one.
 */
export class Turns {
  #last: Promise<void> = Promise.resolve();
  #inLine = 0;

  /** Whether a caller holds a turn or waits for one. */
  get busy(): boolean {
    return this.#inLine > 0;
  }

  /** Waits for this caller's turn; returns the function that ends it. */
  async take(options: WaitOptions, onTimeout: (ms: number) => Error): Promise<() => void> {
    const previous = this.#last;
    const turn = Promise.withResolvers<void>();
    this.#last = turn.promise;
    this.#inLine++;
    try {
      await within(previous, options, onTimeout);
    } catch (error) {
      this.#inLine--;
      previous.finally(turn.resolve);
      throw error;
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#inLine--;
      turn.resolve();
    };
  }
}

/**
 * Signals between processes: send them (kill(2), also to a process group), check whether
 * a process exists, listen for them, wait for the next one, and the doorbell pattern
 * that makes signals safe to use as event notifications.
 *
 * A signal says only that an event happened: it carries no data, and identical signals
 * that arrive before the first is handled coalesce into one. Deliver data elsewhere
 * (shared memory, a queue) and use the signal to say "look" ({@link Doorbell}).
 *
 * Default actions (what happens to a process that receives a signal nobody listens for):
 *
 * | signal | default action |
 * | --- | --- |
 * | SIGHUP, SIGINT, SIGKILL, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGSTKFLT, SIGIO, SIGPWR, SIGVTALRM, SIGPROF | terminate |
 * | SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS | terminate with a core dump |
 * | SIGCHLD, SIGURG, SIGWINCH | ignore |
 * | SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU | stop |
 * | SIGCONT | continue if stopped |
 *
 * A signal that arrives before a listener is installed, or after the last listener was
 * removed, gets its default action: for most signals the process dies. Listeners do not
 * keep a Deno process alive.
 *
 * @module
 */
import { C, type SignalName, SIGNALS } from "../ffi/constants.ts";
import {
  check,
  closedError,
  errnoError,
  lastErrno,
  stringArgument,
  timedOutError,
} from "../ffi/errno.ts";
import { ERRNO } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { openLayout } from "./_layout.ts";
import { Attachment, withLife, writeIdentity } from "./_lifecycle.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  currentPid,
  currentProcessToken,
  processAlive,
  processUid,
  sleepSync,
  tokenParts,
} from "./_process.ts";
import { describe, validateInteger, validateOptions, validatePosixName } from "./_validate.ts";
import { validateWaitOptions, type WaitOptions } from "./_wait.ts";
import { SharedMemory } from "./shared_memory.ts";

// setTimeout fires at once for delays over 2^31 - 1 ms; longer timeouts (over 24 days)
// are treated as none.
const MAX_TIMER_MS = 2 ** 31 - 1;

// A timer that keeps the process alive while something awaits a signal.
const KEEP_ALIVE_MS = 2 ** 30;

export type { SignalName } from "../ffi/constants.ts";

/** What a process does with a signal it does not listen for. */
export type DefaultAction = "terminate" | "core dump" | "ignore" | "stop" | "continue";

const DEFAULT_ACTIONS: Record<SignalName, DefaultAction> = {
  SIGHUP: "terminate",
  SIGINT: "terminate",
  SIGQUIT: "core dump",
  SIGILL: "core dump",
  SIGTRAP: "core dump",
  SIGABRT: "core dump",
  SIGBUS: "core dump",
  SIGFPE: "core dump",
  SIGKILL: "terminate",
  SIGUSR1: "terminate",
  SIGSEGV: "core dump",
  SIGUSR2: "terminate",
  SIGPIPE: "terminate",
  SIGALRM: "terminate",
  SIGTERM: "terminate",
  SIGSTKFLT: "terminate",
  SIGCHLD: "ignore",
  SIGCONT: "continue",
  SIGSTOP: "stop",
  SIGTSTP: "stop",
  SIGTTIN: "stop",
  SIGTTOU: "stop",
  SIGURG: "ignore",
  SIGXCPU: "core dump",
  SIGXFSZ: "core dump",
  SIGVTALRM: "terminate",
  SIGPROF: "terminate",
  SIGWINCH: "ignore",
  SIGIO: "terminate",
  SIGPWR: "terminate",
  SIGSYS: "core dump",
};

// Why a signal cannot be listened for.
const UNLISTENABLE: Partial<Record<SignalName, string>> = {
  SIGKILL: "it cannot be caught, blocked or ignored (see signal(7))",
  SIGSTOP: "it cannot be caught, blocked or ignored (see signal(7))",
  SIGSEGV: "it reports a fault in this process itself; Deno does not allow listening for it",
  SIGILL: "it reports a fault in this process itself; Deno does not allow listening for it",
  SIGFPE: "it reports a fault in this process itself; Deno does not allow listening for it",
  SIGBUS: "it reports a fault in this process itself; a listener cannot repair the access",
  SIGUSR1: "Deno (2.9.2 and later) starts its debugger on SIGUSR1, listener or not: " +
    "use SIGUSR2 for application events",
};

/** A signal was named that cannot be listened for (SIGKILL, SIGSTOP, SIGUSR1, ...). */
export class UnlistenableSignalError extends TypeError {
  /** The signal refused. */
  readonly signal: string;

  /** Creates the error for `signal` with the reason it cannot be listened for. */
  constructor(signal: string, reason: string) {
    stringArgument(signal, "signal");
    stringArgument(reason, "reason");
    super(`Cannot listen for ${signal}: ${reason}`);
    this.name = "UnlistenableSignalError";
    this.signal = signal;
  }
}

function validateSignal(signal: unknown): SignalName {
  if (typeof signal !== "string" || !Object.hasOwn(SIGNALS, signal)) {
    throw new TypeError(
      `Invalid signal: expected a name such as "SIGTERM", got ${describe(signal)}`,
    );
  }
  return signal as SignalName;
}

function validateListenable(signal: unknown): SignalName {
  const name = validateSignal(signal);
  const reason = UNLISTENABLE[name];
  if (reason) throw new UnlistenableSignalError(name, reason);
  return name;
}

function validatePid(pid: unknown, what = "pid"): number {
  return validateInteger(pid, what, 1, 2 ** 31 - 1);
}

/**
 * The number of a signal on this platform, e.g. `signalNumber("SIGTERM")` is 15.
 *
 * @example Look up a number
 * ```ts
 * import { signalNumber } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(signalNumber("SIGKILL"), 9);
 * ```
 */
export function signalNumber(signal: SignalName): number {
  return SIGNALS[validateSignal(signal)];
}

/**
 * What a process does with `signal` when nothing listens for it (see signal(7)).
 *
 * @example SIGTERM terminates, SIGCHLD is ignored
 * ```ts
 * import { defaultAction } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(defaultAction("SIGTERM"), "terminate");
 * assert.equal(defaultAction("SIGCHLD"), "ignore");
 * ```
 */
export function defaultAction(signal: SignalName): DefaultAction {
  return DEFAULT_ACTIONS[validateSignal(signal)];
}

/**
 * Sends `signal` to process `pid` (kill(2)). Throws `NotFoundError` (ESRCH) when there
 * is no such process and `PermissionDeniedError` (EPERM) when it is not ours.
 *
 * @example Signal a child process
 * ```ts
 * import { sendSignal } from "@deno-ipc/ipc";
 *
 * const child = new Deno.Command(Deno.execPath(), {
 *   args: ["eval", "setTimeout(() => {}, 10000)"],
 * }).spawn();
 * sendSignal(child.pid, "SIGTERM");
 * await child.status;
 * ```
 */
export function sendSignal(pid: number, signal: SignalName = "SIGTERM"): void {
  validatePid(pid);
  const number = signalNumber(signal);
  check("kill", libc().symbols.kill(pid, number), `process ${pid}`);
}

/**
 * Sends `signal` to every process of process group `pgid` (kill(2) with `-pgid`).
 *
 * @example Stop a whole group
 * ```ts
 * import { sendSignalToGroup } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => sendSignalToGroup(0, "SIGTERM"), RangeError); // 0 would be our own group
 * ```
 */
export function sendSignalToGroup(pgid: number, signal: SignalName = "SIGTERM"): void {
  validatePid(pgid, "process group id");
  const number = signalNumber(signal);
  check("kill", libc().symbols.kill(-pgid, number), `process group ${pgid}`);
}

/**
 * Sends `signal` to this process (raise(3)). With no listener installed, the default
 * action applies: for most signals, this process dies.
 *
 * @example Raise a signal this process listens for
 * ```ts
 * import { raiseSignal, waitForSignal } from "@deno-ipc/ipc";
 *
 * const arrived = waitForSignal("SIGUSR2", { timeout: 5000 });
 * raiseSignal("SIGUSR2");
 * await arrived;
 * ```
 */
export function raiseSignal(signal: SignalName): void {
  check("raise", libc().symbols.raise(signalNumber(signal)));
}

/** Whether a process exists, and whether it is ours to signal. */
export type ProcessStatus = "running" | "no such process" | "not permitted";

/**
 * Checks process `pid` with signal 0 (kill(2) sends nothing then): `"running"` (it exists
 * and we may signal it), `"no such process"`, or `"not permitted"` (it exists but is not
 * ours). A zombie (exited, not yet waited for) still counts as running.
 *
 * @example This process is running
 * ```ts
 * import { processStatus } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * assert.equal(processStatus(Deno.pid), "running");
 * ```
 */
export function processStatus(pid: number): ProcessStatus {
  validatePid(pid);
  if (libc().symbols.kill(pid, 0) === 0) return "running";
  const errno = lastErrno();
  if (errno === ERRNO.ESRCH) return "no such process";
  if (errno === ERRNO.EPERM) return "not permitted";
  throw errnoError(errno, "kill", { objectName: `process ${pid}` });
}

/**
 * Whether process `pid` exists (ours or not).
 *
 * @example A child that has been waited for no longer exists
 * ```ts
 * import { isProcessAlive } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""] }).spawn();
 * await child.status;
 * assert.equal(isProcessAlive(child.pid), false);
 * ```
 */
export function isProcessAlive(pid: number): boolean {
  return processStatus(pid) !== "no such process";
}

/**
 * Makes this process the leader of a new process group (setpgid(0, 0)) and returns its
 * id; children spawned afterwards belong to it, so {@link sendSignalToGroup} reaches
 * them all.
 *
 * @example Become a group leader
 * ```ts ignore
 * import { startProcessGroup } from "@deno-ipc/ipc";
 *
 * const pgid = startProcessGroup(); // equals Deno.pid
 * ```
 */
export function startProcessGroup(): number {
  check("setpgid", libc().symbols.setpgid(0, 0));
  return processGroupOf(0);
}

/**
 * The process group of process `pid` (0: this process), see getpgid(2).
 *
 * @example Children start in their parent's group
 * ```ts
 * import { processGroupOf } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * assert.ok(processGroupOf(0) > 0);
 * ```
 */
export function processGroupOf(pid: number): number {
  validateInteger(pid, "pid", 0, 2 ** 31 - 1);
  return check("getpgid", libc().symbols.getpgid(pid), `process ${pid}`);
}

/**
 * Calls `handler` each time `signal` arrives, until the returned Disposable is disposed.
 * Throws {@link UnlistenableSignalError} for SIGKILL, SIGSTOP, the fault signals and
 * SIGUSR1. Arrivals that come close together may run the handler once.
 *
 * A listener does not keep the process alive (as with `Deno.addSignalListener`);
 * {@link waitForSignal} does, while it waits.
 *
 * @example Listen with `using`
 * ```ts
 * import { onSignal, raiseSignal, waitForSignal } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * let count = 0;
 * using _listening = onSignal("SIGUSR2", () => count++);
 * const arrived = waitForSignal("SIGUSR2", { timeout: 5000 });
 * raiseSignal("SIGUSR2");
 * await arrived;
 * assert.equal(count, 1);
 * ```
 */
export function onSignal(signal: SignalName, handler: () => void): Disposable {
  const name = validateListenable(signal);
  if (typeof handler !== "function") throw new TypeError("Invalid handler: expected a function");
  const listener = () => handler();
  Deno.addSignalListener(name, listener);
  let listening = true;
  return {
    [Symbol.dispose]() {
      if (!listening) return;
      listening = false;
      Deno.removeSignalListener(name, listener);
    },
  };
}

/**
 * Resolves when `signal` next arrives, keeping the process alive meanwhile. Rejects with
 * `TimedOutError` after `timeout` ms and with the abort reason when `signal` of the
 * options aborts.
 *
 * @example Wait with a timeout
 * ```ts
 * import { TimedOutError, waitForSignal } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(waitForSignal("SIGUSR2", { timeout: 10 }), TimedOutError);
 * ```
 */
export function waitForSignal(signal: SignalName, options: WaitOptions = {}): Promise<void> {
  let name: SignalName;
  let checked: WaitOptions;
  try {
    name = validateListenable(signal);
    checked = validateWaitOptions(options);
    checked.signal?.throwIfAborted();
  } catch (error) {
    return Promise.reject(error);
  }
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const keepAlive = setInterval(() => {}, KEEP_ALIVE_MS); // signal listeners do not
  const finish = () => {
    clearInterval(keepAlive);
    clearTimeout(timer);
    checked.signal?.removeEventListener("abort", onAbort);
    listening[Symbol.dispose]();
  };
  const onAbort = () => {
    finish();
    reject(checked.signal!.reason);
  };
  const listening = onSignal(name, () => {
    finish();
    resolve();
  });
  checked.signal?.addEventListener("abort", onAbort, { once: true });
  if (checked.timeout !== undefined && checked.timeout <= MAX_TIMER_MS) {
    timer = setTimeout(() => {
      finish();
      reject(timedOutError("wait for", "signal", name, checked.timeout!));
    }, checked.timeout);
  }
  return promise;
}

/** Options of {@link Doorbell.create}. */
export interface DoorbellCreateOptions {
  /** Name of the shared memory that holds the counter. Default: a fresh random name. */
  name?: string;
  /** The signal that rings. Default: `"SIGUSR2"`. */
  signal?: SignalName;
}

/** Options of {@link Doorbell.open}. */
export interface DoorbellOpenOptions {
  /** Name of an existing doorbell. */
  name: string;
  /**
   * The signal this handle rings with and listens on: it is never read from the shared
   * memory. A ring is refused (an error) when the listener listens on another signal.
   * Default: `"SIGUSR2"`.
   */
  signal?: SignalName;
}

const DOORBELL = "doorbell";
const DOORBELL_MAGIC = 0x4c_42_49_44; // "DIBL"
const DOORBELL_VERSION = 2;
const D_MAGIC = 0;
const D_VERSION = 1;
const D_IN_FLIGHT = 3; // rings between reading the receiver and their signal returning
const D_SIGNALLED_AT = 7; // when a ring last signalled: Date.now() mod 2^32, as an int32
const D_LIFE = 6; // byte offset of the identity block (lib/_lifecycle.ts); 0 in older bells
// 64-bit word 2 (bytes 16 to 23): the listener, as its process token (pid and start
// time) with the number of the signal it listens on in bits 24 to 30; 0 when none.
const D_RECEIVER_WORD = 2;
const D_RUNG = 16; // byte 64: events rung so far (mod 2^32)
const D_DELIVERED = 32; // byte 128: events handed to a listener so far (mod 2^32)
const DOORBELL_SIZE = 192;

// How long a listener that stops waits for rings in flight (a ringer killed between
// counting itself in and out would otherwise hold it forever), and then for the kernel
// to deliver the last of their signals, before it removes its signal listener.
const IN_FLIGHT_WAIT_MS = 100;
const DISPATCH_GRACE_MS = 10;

/**
 * The doorbell pattern: the sender adds to an event counter in shared memory, then
 * rings a signal; the receiver reads the counter on every ring. Signals coalesce, so the
 * receiver may see fewer rings than events, but it never misses an event: each ring it
 * does see reports every event since the last one.
 *
 * One process listens at a time (its pid is kept in the shared memory); any number may
 * ring. A ring while nobody listens is counted and reported when a listener starts.
 *
 * A ring counts its event before it signals, so a listener can see an event before the
 * ring's signal arrives. A signal arriving after its listener is gone would get the
 * default action (death, for SIGUSR2); so a listener that stops first withdraws its pid,
 * then waits until no ring is between reading that pid and signalling (a count in the
 * shared memory), until the kernel delivered their signals, and, when a ring signalled
 * it less than 10 ms before, until Deno's signal thread had those 10 ms to pass them on,
 * before it stops listening.
 *
 * @example Ring three times, receive three events
 * ```ts
 * import { Doorbell } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using bell = Doorbell.create();
 * try {
 *   let events = 0;
 *   using _listening = bell.listen((count) => events += count);
 *   using ringer = Doorbell.open({ name: bell.name });
 *   ringer.ring();
 *   ringer.ring(2);
 *   while (events < 3) await bell.wait({ timeout: 5000 });
 *   assert.equal(events, 3);
 * } finally {
 *   bell.unlink();
 * }
 * ```
 */
export class Doorbell implements Disposable {
  readonly #shm: SharedMemory;
  readonly #words: Int32Array;
  readonly #receiver: BigInt64Array;
  readonly #signal: SignalName;
  readonly #lifetime: Lifetime;
  // The listener this handle last rang: its receiver word and a pidfd naming exactly
  // that process (so a pid the system gives to another process is never signalled).
  #target: { word: bigint; pidfd: number } | undefined;
  #listening: Disposable | undefined;
  #handlers = new Set<(events: number) => void>();
  #waiters = new Set<(events: number) => void>();
  #closeWaiters = new Set<() => void>();

  private constructor(shm: SharedMemory, signal: SignalName) {
    this.#shm = shm;
    this.#words = shm.view(Int32Array, 0, DOORBELL_SIZE / 4);
    this.#receiver = shm.view(BigInt64Array, 0, 4);
    this.#signal = signal;
    // Throws NotFoundError when a cleaner is removing the doorbell (the caller closes shm).
    const attachment = Attachment.attach(shm, this.#words[D_LIFE], DOORBELL);
    this.#lifetime = new Lifetime(() => {
      this.#forgetTarget();
      attachment.detach();
      shm.close();
    });
  }

  /**
   * Creates a doorbell exclusively.
   *
   * @example With another signal
   * ```ts
   * import { Doorbell } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using bell = Doorbell.create({ signal: "SIGURG" });
   * try {
   *   assert.equal(bell.signal, "SIGURG");
   * } finally {
   *   bell.unlink();
   * }
   * ```
   */
  static create(options: DoorbellCreateOptions = {}): Doorbell {
    const checked = validateOptions<DoorbellCreateOptions>(options, DOORBELL);
    const signal = validateListenable(checked.signal ?? "SIGUSR2");
    if (checked.name !== undefined) validatePosixName(checked.name, DOORBELL, 255);
    const shm = SharedMemory.create({
      name: checked.name,
      size: withLife(DOORBELL_SIZE),
      initialize: (shm) => {
        const words = shm.view(Int32Array, 0, DOORBELL_SIZE / 4);
        words[D_MAGIC] = DOORBELL_MAGIC;
        words[D_VERSION] = DOORBELL_VERSION;
        words[D_LIFE] = writeIdentity(shm, "doorbell");
      },
    });
    return new Doorbell(shm, signal);
  }

  /**
   * Opens an existing doorbell, to ring it or to listen.
   *
   * @example Open by name
   * ```ts
   * import { Doorbell } from "@deno-ipc/ipc";
   * import assert from "node:assert/strict";
   *
   * using bell = Doorbell.create();
   * try {
   *   using same = Doorbell.open({ name: bell.name });
   *   assert.equal(same.signal, "SIGUSR2");
   * } finally {
   *   bell.unlink();
   * }
   * ```
   */
  static open(options: DoorbellOpenOptions): Doorbell {
    const checked = validateOptions<DoorbellOpenOptions>(options, DOORBELL);
    const signal = validateListenable(checked.signal ?? "SIGUSR2");
    const shm = openLayout({ name: checked.name }, DOORBELL, (shm) =>
      shm.size >= DOORBELL_SIZE &&
      Atomics.load(shm.view(Int32Array, 0, 2), D_MAGIC) === DOORBELL_MAGIC &&
      shm.view(Int32Array, 0, 2)[D_VERSION] === DOORBELL_VERSION);
    try {
      return new Doorbell(shm, signal);
    } catch (error) {
      shm.close();
      throw error;
    }
  }

  /** Removes a doorbell's name. */
  static unlink(name: string): void {
    SharedMemory.unlink(name);
  }

  /** The doorbell's name. */
  get name(): string {
    return this.#shm.name;
  }

  /** The signal that rings it. */
  get signal(): SignalName {
    return this.#signal;
  }

  /** Events rung so far, by every process. */
  get rung(): number {
    this.#assertOpen("read");
    return Atomics.load(this.#words, D_RUNG) >>> 0;
  }

  /** Pid of the process listening now, or 0. */
  get receiver(): number {
    this.#assertOpen("read");
    return receiverParts(Atomics.load(this.#receiver, D_RECEIVER_WORD)).pid;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#lifetime.closed;
  }

  /**
   * Counts `events` (default 1) and, if a process listens, rings its signal. Returns
   * whether a signal was sent. A listener that died without stopping is cleared (the
   * events stay counted for the next listener) and this returns `false`.
   *
   * The listener is read from shared memory, so it is verified before it is signalled:
   * it must be alive with the pid AND start time it recorded (a pid the system gave to
   * another process is never signalled), belong to this process's user, and listen on
   * this handle's own signal; the signal is sent through a pidfd. Otherwise nothing is
   * sent (and a listener on another signal is an error).
   */
  ring(events = 1): boolean {
    this.#assertOpen("ring");
    validateInteger(events, "number of events", 1, 2 ** 31 - 1);
    const words = this.#words;
    Atomics.add(words, D_RUNG, events);
    Atomics.add(words, D_IN_FLIGHT, 1); // before reading the receiver: see #stopListening
    try {
      const word = Atomics.load(this.#receiver, D_RECEIVER_WORD);
      if (word === 0n) return false;
      const { signal } = receiverParts(word);
      if (signal !== SIGNALS[this.#signal]) {
        throw new TypeError(
          `Doorbell "${this.name}" is rung with ${this.#signal}, but its listener listens on ` +
            `signal ${signal}: open it with the listener's signal`,
        );
      }
      const pidfd = this.#pidfdOf(word);
      if (pidfd === undefined) return false;
      const { symbols } = libc();
      if (symbols.pidfd_send_signal(C.SYS_pidfd_send_signal, pidfd, signal, null, 0) === 0) {
        Atomics.store(words, D_SIGNALLED_AT, Date.now() | 0); // before we count out
        return true;
      }
      const errno = lastErrno();
      if (errno !== ERRNO.ESRCH) {
        throw errnoError(errno, "pidfd_send_signal", { objectName: this.name });
      }
      this.#forgetTarget();
      Atomics.compareExchange(this.#receiver, D_RECEIVER_WORD, word, 0n);
      return false;
    } finally {
      Atomics.sub(words, D_IN_FLIGHT, 1);
    }
  }

  // A pidfd for the listener `word` names, opened once per listener; undefined when that
  // process is dead (the word is then cleared) or not one this process may signal.
  #pidfdOf(word: bigint): number | undefined {
    if (this.#target?.word === word) return this.#target.pidfd;
    this.#forgetTarget();
    const { pid, startTime } = receiverParts(word);
    const { symbols } = libc();
    const pidfd = pid > 0 ? symbols.pidfd_open(C.SYS_pidfd_open, pid, 0) : -1;
    // Checked after opening: if the process has that start time now, the pidfd names it.
    if (pidfd < 0 || !processAlive(pid, startTime)) {
      if (pidfd >= 0) symbols.close(pidfd);
      Atomics.compareExchange(this.#receiver, D_RECEIVER_WORD, word, 0n);
      return undefined;
    }
    if (processUid(pid) !== symbols.geteuid()) {
      symbols.close(pidfd);
      return undefined; // another user's process: never signalled
    }
    // A process that does not catch the signal would take its default action (death):
    // only a process with a handler installed for it is a listener. Deno may keep its
    // handler after the last listener is gone and still die of the signal, so this
    // process itself must be listening on this very doorbell.
    const self = pid === currentPid();
    if (
      (self && !listeningHere.has(this.name)) ||
      (!self && !signalCaught(pid, receiverParts(word).signal))
    ) {
      symbols.close(pidfd);
      return undefined;
    }
    this.#target = { word, pidfd };
    return pidfd;
  }

  #forgetTarget(): void {
    if (this.#target) libc().symbols.close(this.#target.pidfd);
    this.#target = undefined;
  }

  /**
   * Starts listening in this process: `handler` gets the number of events since the last
   * call, on every ring that brings some (and at once for events rung before). Only one
   * process listens at a time. Dispose the result to stop.
   */
  listen(handler?: (events: number) => void): Disposable {
    this.#assertOpen("listen on");
    if (handler !== undefined && typeof handler !== "function") {
      throw new TypeError("Invalid handler: expected a function");
    }
    if (!this.#listening) {
      const me = this.#receiverWord();
      const receiver = this.#receiver;
      let other = Atomics.compareExchange(receiver, D_RECEIVER_WORD, 0n, me);
      // A listener that died without stopping is replaced.
      if (other !== 0n && other !== me && !receiverAlive(other)) {
        other = Atomics.compareExchange(receiver, D_RECEIVER_WORD, other, me) === other
          ? 0n
          : other;
      }
      if (other !== 0n && receiverParts(other).pid === currentPid()) {
        throw new TypeError(
          `Doorbell "${this.name}" already has a listener in this process (another handle)`,
        );
      }
      if (other !== 0n) {
        throw new TypeError(
          `Doorbell "${this.name}" already has a listener: process ${receiverParts(other).pid}`,
        );
      }
      this.#listening = onSignal(this.#signal, () => this.#deliver());
      listeningHere.add(this.name);
    }
    if (handler) this.#handlers.add(handler);
    queueMicrotask(() => this.#deliver()); // events rung before we listened
    let active = true;
    return {
      [Symbol.dispose]: () => {
        if (!active) return;
        active = false;
        if (handler) this.#handlers.delete(handler);
        if (this.#handlers.size === 0 && this.#waiters.size === 0) this.#stopListening();
      },
    };
  }

  /**
   * Waits for the next ring that brings events and returns how many (events rung while
   * nobody waited are returned at once), keeping the process alive meanwhile. Listens
   * for the time of the wait if this handle does not listen already.
   */
  async wait(options: WaitOptions = {}): Promise<number> {
    this.#assertOpen("wait on");
    const { timeout, signal } = validateWaitOptions(options);
    signal?.throwIfAborted();
    // Listening first: only the listening process may take events (another listener
    // would lose them to us).
    using _listening = this.listen();
    const pending = this.#deliver();
    if (pending > 0) return pending;
    const { promise, resolve, reject } = Promise.withResolvers<number>();
    this.#waiters.add(resolve);
    const onClose = () => reject(closedError("wait on", DOORBELL, this.#shm.name));
    this.#closeWaiters.add(onClose);
    const keepAlive = setInterval(() => {}, KEEP_ALIVE_MS); // signal listeners do not
    const onAbort = () => reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = timeout === undefined || timeout > MAX_TIMER_MS
      ? undefined
      : setTimeout(() => reject(timedOutError("wait on", DOORBELL, this.name, timeout)), timeout);
    try {
      this.#deliver(); // a ring between the check above and listening
      return await promise;
    } finally {
      clearInterval(keepAlive);
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      this.#waiters.delete(resolve);
      this.#closeWaiters.delete(onClose);
    }
  }

  /** Stops listening (if this handle listens) and unmaps the counter. Idempotent. */
  close(): void {
    if (this.#lifetime.closed) return;
    for (const onClose of this.#closeWaiters) onClose();
    this.#stopListening();
    this.#lifetime.close();
  }

  /** Removes the doorbell's name. */
  unlink(): void {
    this.#shm.unlink();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #assertOpen(operation: string): void {
    if (this.#lifetime.closed) throw closedError(operation, DOORBELL, this.#shm.name);
  }

  #receiverWord(): bigint {
    return currentProcessToken() | (BigInt(SIGNALS[this.#signal]) << 24n);
  }

  // Only the one listening process takes events, so the delivered count needs no lock;
  // keeping it in shared memory hands every event to exactly one listener, even across
  // listeners that come and go.
  #take(): number {
    const rung = Atomics.load(this.#words, D_RUNG);
    const events = (rung - Atomics.load(this.#words, D_DELIVERED)) >>> 0;
    Atomics.store(this.#words, D_DELIVERED, rung);
    return events;
  }

  // Gives the events since the last delivery to every handler and waiter of this handle.
  #deliver(): number {
    if (this.#lifetime.closed) return 0;
    const events = this.#take();
    if (events > 0) {
      for (const handler of this.#handlers) handler(events);
      for (const waiter of this.#waiters) waiter(events);
    }
    return events;
  }

  #stopListening(): void {
    if (!this.#listening) return;
    const words = this.#words;
    Atomics.compareExchange(this.#receiver, D_RECEIVER_WORD, this.#receiverWord(), 0n);
    // A ringer counts itself in before it reads the pid, so once the count is 0 no ring
    // can still signal us; then the kernel gets a moment to deliver the last signals.
    const deadline = performance.now() + IN_FLIGHT_WAIT_MS;
    while (Atomics.load(words, D_IN_FLIGHT) > 0 && performance.now() < deadline) {
      libc().symbols.sched_yield();
    }
    // A signal sent to this process but not yet taken by a thread would meet the default
    // action (death) once the listener is gone: wait until the kernel delivered it.
    const signal = SIGNALS[this.#signal];
    const pendingDeadline = performance.now() + IN_FLIGHT_WAIT_MS;
    while (signalPending(signal) && performance.now() < pendingDeadline) sleepSync(0.1);
    // A signal a thread took reaches the listeners through Deno's signal thread, which
    // can lag behind (5 ms seen under load); one that then finds no listener kills the
    // process (exit code 140 for SIGUSR2). So the listener stays until DISPATCH_GRACE_MS
    // after the last signal a ring sent (ringers record when): no wait when that was
    // longer ago, as it is unless a ring came just before this stop.
    const since = ((Date.now() | 0) - Atomics.load(words, D_SIGNALLED_AT)) | 0;
    if (since >= 0 && since < DISPATCH_GRACE_MS) sleepSync(DISPATCH_GRACE_MS - since);
    this.#deliver();
    this.#listening[Symbol.dispose]();
    this.#listening = undefined;
    listeningHere.delete(this.name);
  }
}

// Doorbells (by name) that a handle of this process listens on.
const listeningHere = new Set<string>();

// The parts of a doorbell's receiver word (see D_RECEIVER_WORD).
function receiverParts(word: bigint): { pid: number; startTime: number; signal: number } {
  const { pid: low, startTime } = tokenParts(word);
  return { pid: low & 0xff_ffff, startTime, signal: (low >>> 24) & 0x7f };
}

function receiverAlive(word: bigint): boolean {
  const { pid, startTime } = receiverParts(word);
  return processAlive(pid, startTime);
}

const statusPath = new TextEncoder().encode("/proc/self/status\0");
const statusBuffer = new Uint8Array(4096);

// Whether `signal` is pending for this process (ShdPnd) or the calling thread (SigPnd).
function signalPending(signal: number): boolean {
  return signalBitSet(statusPath, ["SigPnd", "ShdPnd"], signal);
}

// Whether process `pid` has a handler installed for `signal` (SigCgt of its status).
function signalCaught(pid: number, signal: number): boolean {
  return signalBitSet(new TextEncoder().encode(`/proc/${pid}/status\0`), ["SigCgt"], signal);
}

function signalBitSet(path: Uint8Array<ArrayBuffer>, fields: string[], signal: number): boolean {
  if (!(signal >= 1 && signal <= 64)) return false;
  const { open, read, close } = libc().symbols;
  const fd = open(path, C.O_RDONLY | C.O_CLOEXEC, 0);
  if (fd < 0) return false;
  let length: number;
  try {
    length = read(fd, statusBuffer, BigInt(statusBuffer.length));
  } finally {
    close(fd);
  }
  const text = new TextDecoder().decode(statusBuffer.subarray(0, Math.max(0, length)));
  const bit = 1n << BigInt(signal - 1);
  for (const field of fields) {
    const match = new RegExp(`\\n${field}:\\s*([0-9a-f]+)`).exec(text);
    if (match !== null && (BigInt(`0x${match[1]}`) & bit) !== 0n) return true;
  }
  return false;
}

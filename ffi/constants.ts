import { LINUX_ERRNO, LINUX_X86_64, LINUX_X86_64_SIGNALS } from "./platform/linux_x86_64.ts";

/** The shape every platform module provides. */
export type PlatformConstants = typeof LINUX_X86_64;
/** The signal names of POSIX and Linux (signal(7)). */
export type SignalName =
  | "SIGHUP"
  | "SIGINT"
  | "SIGQUIT"
  | "SIGILL"
  | "SIGTRAP"
  | "SIGABRT"
  | "SIGBUS"
  | "SIGFPE"
  | "SIGKILL"
  | "SIGUSR1"
  | "SIGSEGV"
  | "SIGUSR2"
  | "SIGPIPE"
  | "SIGALRM"
  | "SIGTERM"
  | "SIGSTKFLT"
  | "SIGCHLD"
  | "SIGCONT"
  | "SIGSTOP"
  | "SIGTSTP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGURG"
  | "SIGXCPU"
  | "SIGXFSZ"
  | "SIGVTALRM"
  | "SIGPROF"
  | "SIGWINCH"
  | "SIGIO"
  | "SIGPWR"
  | "SIGSYS";

/** Signal names with their numbers on the current platform. */
export type SignalTable = Readonly<Record<SignalName, number>>;
/** errno names this library refers to, with their numbers on the current platform. */
export type ErrnoTable = typeof LINUX_ERRNO;

/** `os-arch` pairs with a complete constants module. */
export const SUPPORTED_TARGETS: readonly string[] = ["linux-x86_64"];

/** The current `os-arch` pair, e.g. `linux-x86_64` or `darwin-aarch64`. */
export const CURRENT_TARGET = `${Deno.build.os}-${Deno.build.arch}`;

/** Whether this platform has a constants module (others fail on first use, not on import). */
export const PLATFORM_SUPPORTED: boolean = SUPPORTED_TARGETS.includes(CURRENT_TARGET);

// Importing must succeed everywhere so that `mod.ts` can be type-checked and documented
// on any machine; ffi/libc.ts refuses to load on an unsupported target, so these values
// are never handed to a foreign function there.
/** Constants of the current platform. */
export const C: PlatformConstants = LINUX_X86_64;
/** errno numbers of the current platform. */
export const ERRNO: ErrnoTable = LINUX_ERRNO;
/** Signal numbers of the current platform. */
export const SIGNALS: SignalTable = LINUX_X86_64_SIGNALS;

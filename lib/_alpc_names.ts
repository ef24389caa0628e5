// ALPC connection ports by name, and the limits both sides of a channel agree on.
import { ERRNO } from "../ffi/constants.ts";
import { ConnectionRefusedError, stringArgument } from "../ffi/errno.ts";
import { MAX_INLINE_LIMIT } from "./_alpc_wire.ts";
import { describe, validateInteger } from "./_validate.ts";

const DEFAULT_INLINE_LIMIT = 256;
const DEFAULT_MAX_MESSAGE = 256 * 2 ** 20;
/** Largest section (1 GiB). */
export const MAX_SECTION = 2 ** 30;
/** How long either side waits for the other during the handshake. */
export const HANDSHAKE_TIMEOUT_MS = 5000;
/** Default of `maxPendingConnections`. */
export const DEFAULT_MAX_PENDING = 64;
const DEFAULT_DIRECTORY = "/tmp";

/** The server refused the connection; `reason` is what it said. */
export class AlpcConnectionRefusedError extends ConnectionRefusedError {
  /** The server's reason. */
  readonly reason: string;

  /** Creates the error for the port `name`. */
  constructor(name: string, reason: string) {
    stringArgument(name, "name");
    stringArgument(reason, "reason");
    super(ERRNO.ECONNREFUSED, "connect", {
      objectName: name,
      message: `ALPC port "${name}" refused the connection: ${reason}`,
    });
    this.reason = reason;
  }
}

/** Checks an ALPC port name: 1 to 64 letters, digits, ".", "_" or "-", not starting with ".". */
export function validatePortName(name: unknown): string {
  if (typeof name !== "string" || !/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new TypeError(
      `Invalid ALPC port name: expected 1 to 64 letters, digits, ".", "_" or "-" (not ` +
        `starting with "."), got ${describe(name)}`,
    );
  }
  return name;
}

/** The socket file of the port `name` in `directory` (default /tmp). */
export function portPath(name: string, directory: unknown): string {
  if (directory !== undefined && (typeof directory !== "string" || directory === "")) {
    throw new TypeError(
      `Invalid directory: expected a non-empty string, got ${describe(directory)}`,
    );
  }
  return `${directory ?? DEFAULT_DIRECTORY}/deno-ipc-alpc.${name}`;
}

/** Limits both sides of a channel set (checked before any syscall). */
export interface AlpcLimits {
  /**
   * Largest message copied inline through the socket, in bytes: default 256, at most
   * {@link MAX_INLINE_LIMIT}. A channel uses the smaller of the two sides' limits.
   */
  inlineLimit?: number;
  /**
   * Largest message this side accepts through the in-place (vm) path, which allocates
   * its size: default 256 MiB.
   */
  maxMessageSize?: number;
  /** Directory of connection ports (default `/tmp`). */
  directory?: string;
}

/** Checks {@link AlpcLimits} (before any syscall). */
export function checkLimits(options: AlpcLimits): { inlineLimit: number; maxMessageSize: number } {
  return {
    inlineLimit: validateInteger(
      options.inlineLimit ?? DEFAULT_INLINE_LIMIT,
      "inlineLimit",
      0,
      MAX_INLINE_LIMIT,
    ),
    maxMessageSize: validateInteger(
      options.maxMessageSize ?? DEFAULT_MAX_MESSAGE,
      "maxMessageSize",
      0,
      2 ** 32 - 1,
    ),
  };
}

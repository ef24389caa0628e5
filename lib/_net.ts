// What the socket modules share: message bytes, host and port checks, names and errors.
import { ERRNO } from "../ffi/constants.ts";
import { ClosedError } from "../ffi/errno.ts";
import { describe, validateInteger } from "./_validate.ts";

const encoder = new TextEncoder();

/** A message as bytes: a Uint8Array as it is, a string as UTF-8. */
export function toBytes(message: unknown, what = "message"): Uint8Array {
  if (message instanceof Uint8Array) return message;
  if (typeof message === "string") return encoder.encode(message);
  throw new TypeError(
    `Invalid ${what}: expected a Uint8Array or a string, got ${describe(message)}`,
  );
}

/** Checks a host name or IP address. */
export function validateHostname(hostname: unknown): string {
  // Letters, digits and the punctuation of names and addresses (IPv6 included).
  if (typeof hostname !== "string" || !/^[A-Za-z0-9._:%-]{1,253}$/.test(hostname)) {
    throw new TypeError(
      `Invalid hostname: expected a host name or IP address, got ${describe(hostname)}`,
    );
  }
  return hostname;
}

/** Checks a port (0 allowed when listening). */
export function validatePort(port: unknown, allowZero: boolean): number {
  return validateInteger(port, "port", allowZero ? 0 : 1, 65_535);
}

/** A socket address for messages: `host:port`, or a Unix socket's path. */
export function describeAddress(address: Deno.Addr): string {
  return address.transport === "tcp" || address.transport === "udp"
    ? `${address.hostname}:${address.port}`
    : (address as Deno.UnixAddr).path;
}

/** A ClosedError for `operation` on the closed connection `name`. */
export function closedConnection(operation: string, name: string): ClosedError {
  return new ClosedError(ERRNO.EBADF, operation, {
    objectName: name,
    message: `Cannot ${operation}: connection ${name} is closed`,
  });
}

// Argument checks shared by every IPC style. All of them run before any syscall and
// throw TypeError (wrong kind of value) or RangeError (right kind, out of range).
import { C } from "../ffi/constants.ts";

const encoder = new TextEncoder();

/** Checks a POSIX IPC name ("/name": one leading slash, no other, no NUL, bounded). */
export function validatePosixName(name: unknown, what: string, maxLength: number): string {
  if (typeof name !== "string") {
    throw new TypeError(`Invalid ${what} name: expected a string, got ${describe(name)}`);
  }
  if (!name.startsWith("/")) {
    throw new TypeError(`Invalid ${what} name "${name}": it must start with "/"`);
  }
  if (name.indexOf("/", 1) !== -1) {
    throw new TypeError(`Invalid ${what} name "${name}": only the leading "/" is allowed`);
  }
  if (name.includes("\0")) {
    throw new TypeError(`Invalid ${what} name ${JSON.stringify(name)}: it contains NUL`);
  }
  if (name === "/" || name === "/." || name === "/..") {
    throw new TypeError(`Invalid ${what} name "${name}": it needs characters after "/"`);
  }
  const length = encoder.encode(name).length - 1;
  if (length > maxLength) {
    throw new RangeError(
      `Invalid ${what} name "${name.slice(0, 24)}...": ${length} bytes after "/", ` +
        `the limit is ${maxLength}`,
    );
  }
  return name;
}

/** A fresh random POSIX IPC name, "/deno-ipc-" followed by 16 hex digits. */
export function randomPosixName(prefix = "deno-ipc"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `/${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Encodes a string as a NUL-terminated C string. */
export function cString(value: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(value + "\0");
}

/** Checks permission bits: an integer from 0 to 0o777. */
export function validateMode(mode: unknown, what: string): number {
  if (typeof mode !== "number" || !Number.isInteger(mode)) {
    throw new TypeError(`Invalid ${what} mode: expected an integer, got ${describe(mode)}`);
  }
  if (mode < 0 || mode > 0o777) {
    throw new RangeError(
      `Invalid ${what} mode 0o${mode.toString(8)}: permission bits go from 0 to 0o777`,
    );
  }
  return mode;
}

/** Checks an integer in [min, max]. */
export function validateInteger(
  value: unknown,
  what: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`Invalid ${what}: expected an integer, got ${describe(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${what} ${value}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** Checks an options object (undefined counts as empty). */
export function validateOptions<T extends object>(options: unknown, what: string): Partial<T> {
  if (options === undefined) return {};
  if (options === null || typeof options !== "object") {
    throw new TypeError(`Invalid ${what} options: expected an object, got ${describe(options)}`);
  }
  return options as Partial<T>;
}

/** Checks a string argument (no coercion: a number or an object is a TypeError). */
export function validateString(value: unknown, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what}: expected a string, got ${describe(value)}`);
  }
  return value;
}

/** `JSON.stringify(value)`, or a TypeError naming `what` when it has no JSON text. */
export function jsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    // A BigInt, a cycle, or a toJSON that throws.
    throw new TypeError(
      `Invalid ${what}: it cannot be written as JSON (${(error as Error)?.message})`,
      { cause: error },
    );
  }
  if (text === undefined) {
    throw new TypeError(`Invalid ${what}: ${describe(value)} has no JSON form`);
  }
  return text;
}

/** A short description of a value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return `${typeof value} ${String(value)}`;
  }
  return typeof value;
}

/** Default permission bits of created objects: owner read and write. */
export const DEFAULT_MODE = 0o600;

/** Longest POSIX shared memory name after the leading "/". */
export const SHM_NAME_MAX: number = C.NAME_MAX;

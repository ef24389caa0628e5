// What both bounded buffers (lib/bounded_buffer.ts, lib/semaphore_bounded_buffer.ts)
// share: their options, the limits of their shape, and the checks of shapes and items.
import { CorruptedError } from "../ffi/errno.ts";
import type { OwnershipOptions } from "./_owner.ts";
import {
  DEFAULT_MODE,
  SHM_NAME_MAX,
  validateInteger,
  validateMode,
  validateOptions,
  validatePosixName,
} from "./_validate.ts";
import type { SharedMemory } from "./shared_memory.ts";

/** Options of {@link BoundedBuffer.create} and {@link SemaphoreBoundedBuffer.create}. */
export interface BoundedBufferCreateOptions {
  /** Name such as `"/my-buffer"`. Default: a fresh random name. */
  name?: string;
  /** Number of slots, `BUFFER_SIZE` (at least 1; the textbook form needs at least 2). */
  bufferSize: number;
  /** Bytes per item: every item sent must be exactly this long. */
  itemSize: number;
  /** Permission bits, subject to the umask. Default: `0o600`. */
  mode?: number;
}

/**
 * Options of {@link BoundedBuffer.open} and {@link SemaphoreBoundedBuffer.open}: the
 * buffer must belong to this process's uid and give no group/other access, unless the
 * ownership options say otherwise (see {@link SharedMemory.open}).
 */
export interface BoundedBufferOpenOptions extends OwnershipOptions {
  /** Name of an existing buffer. */
  name: string;
}

export const MAX_BUFFER_SIZE = 2 ** 20;
export const MAX_ITEM_SIZE = 2 ** 20;
// Slots end below 2 GiB: the header keeps the identity block's offset (after the slots)
// in a 32-bit word.
export const MAX_BYTES = 2 ** 31 - 1024;

/** A checked shape of a buffer to create. */
export interface Shape {
  name: string | undefined;
  bufferSize: number;
  itemSize: number;
  mode: number;
}

/** Checks the options of create(). */
export function validateShape(options: unknown, what: string, minimumSlots: number): Shape {
  const checked = validateOptions<BoundedBufferCreateOptions>(options, what);
  const name = checked.name === undefined
    ? undefined
    : validatePosixName(checked.name, what, SHM_NAME_MAX);
  const bufferSize = validateInteger(
    checked.bufferSize,
    "buffer size",
    minimumSlots,
    MAX_BUFFER_SIZE,
  );
  const itemSize = validateInteger(checked.itemSize, "item size", 1, MAX_ITEM_SIZE);
  if (bufferSize * itemSize > MAX_BYTES) {
    throw new RangeError(
      `Invalid ${what}: ${bufferSize} x ${itemSize} bytes is over 2 GiB less 1 KiB`,
    );
  }
  return { name, bufferSize, itemSize, mode: validateMode(checked.mode ?? DEFAULT_MODE, what) };
}

/** Checks the shape read from a header (once, on open) against the limits of create. */
export function checkShape(
  shm: SharedMemory,
  what: string,
  header: number,
  bufferSize: number,
  itemSize: number,
  minimumSlots: number,
): void {
  const corrupted = (field: string, detail: string) =>
    CorruptedError.of(what, shm.name, field, detail);
  if (!(bufferSize >= minimumSlots && bufferSize <= MAX_BUFFER_SIZE)) {
    throw corrupted("buffer size", `${bufferSize}`);
  }
  if (!(itemSize >= 1 && itemSize <= MAX_ITEM_SIZE)) {
    throw corrupted("item size", `${itemSize}`);
  }
  if (shm.size < header + bufferSize * itemSize) {
    throw corrupted("size", `${shm.size} bytes for ${bufferSize} slots of ${itemSize} bytes`);
  }
}

/** Checks an item to send. */
export function validateItem(item: Uint8Array, itemSize: number, what: string, name: string): void {
  if (!(item instanceof Uint8Array)) throw new TypeError("Invalid item: expected a Uint8Array");
  if (item.length !== itemSize) {
    throw new RangeError(
      `Invalid item of ${item.length} bytes for ${what} "${name}": items are ${itemSize} bytes`,
    );
  }
}

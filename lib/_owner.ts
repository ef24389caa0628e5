// Ownership of named objects: an object someone else can name (a POSIX name in
// world-writable /dev/shm, a System V key) may have been made by another user, or with a
// mode that lets others read and write it. Opening it would let them read or forge our
// traffic, so every open checks the owner and the mode against what the caller allows.
import { C, ERRNO } from "../ffi/constants.ts";
import { check, PermissionDeniedError } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { describe, validateInteger } from "./_validate.ts";

/** What an opener accepts of an existing object's owner and mode. */
export interface OwnershipOptions {
  /**
   * Group and other permission bits an existing object may have, e.g. `0o060` to accept
   * one its creator shared with the group. Owner bits are ignored. Default: `0` (only its
   * owner may have access), or for `openOrCreate` the group and other bits of `mode`.
   */
  allowModes?: number;
  /**
   * Accept an object owned by another user (default: `false`: it must belong to this
   * process's effective uid). That user could read, change or remove it at any time.
   */
  allowOtherOwners?: boolean;
}

/** Checked {@link OwnershipOptions}. */
export interface Ownership {
  allowModes: number;
  allowOtherOwners: boolean;
}

/** Checks the ownership options of an open (`defaultModes` when `allowModes` is absent). */
export function validateOwnership(options: OwnershipOptions, defaultModes = 0): Ownership {
  const allowModes = options.allowModes === undefined
    ? defaultModes & 0o077
    : validateInteger(options.allowModes, "allowModes", 0, 0o777) & 0o077;
  const other = options.allowOtherOwners;
  if (other !== undefined && typeof other !== "boolean") {
    throw new TypeError(`Invalid allowOtherOwners: expected a boolean, got ${describe(other)}`);
  }
  return { allowModes, allowOtherOwners: other === true };
}

/** The defaults of an open: the caller's own objects, no group or other access. */
export const OWN_ONLY: Ownership = { allowModes: 0, allowOtherOwners: false };

let euid: number | undefined;

/** This process's effective uid (cached: deno-ipc never changes it). */
export function effectiveUid(): number {
  return euid ??= libc().symbols.geteuid();
}

/**
 * Throws `PermissionDeniedError` naming the object when `owners` (the owner uid, and
 * for System V objects the creator uid too) are not all this process's effective uid,
 * or `mode` has group/other bits that `ownership` does not allow.
 */
export function checkOwnership(
  owners: readonly number[],
  mode: number,
  ownership: Ownership,
  what: string,
  objectName: string,
  syscall: string,
): void {
  const me = effectiveUid();
  const stranger = owners.find((uid) => uid !== me);
  if (stranger !== undefined && !ownership.allowOtherOwners) {
    throw new PermissionDeniedError(ERRNO.EACCES, syscall, {
      objectName,
      message: `Refusing ${what} "${objectName}": it belongs to uid ${stranger}, not to this ` +
        `process's uid ${me} (that user could read or forge its contents; pass ` +
        `allowOtherOwners: true to accept it)`,
    });
  }
  const extra = mode & 0o077 & ~ownership.allowModes;
  if (extra !== 0) {
    throw new PermissionDeniedError(ERRNO.EACCES, syscall, {
      objectName,
      message: `Refusing ${what} "${objectName}": its mode 0o${
        (mode & 0o777).toString(8).padStart(3, "0")
      } gives group/other access 0o${extra.toString(8).padStart(3, "0")} beyond allowModes 0o${
        ownership.allowModes.toString(8).padStart(3, "0")
      } (others could read or forge its contents; pass allowModes to accept it)`,
    });
  }
}

/** What fstat(2) reports about an open descriptor: owner, mode, size, identity. */
export interface FileStatus {
  uid: number;
  mode: number;
  size: number;
  device: bigint;
  inode: bigint;
}

const statBuffer = new Uint8Array(C.SIZEOF_STAT);
const statView = new DataView(statBuffer.buffer);

/** fstat(2) of `fd`. */
export function fileStatus(fd: number, objectName: string): FileStatus {
  check("fstat", libc().symbols.fstat(fd, statBuffer), objectName);
  return {
    uid: statView.getUint32(C.STAT_OFFSET_UID, true),
    mode: statView.getUint32(C.STAT_OFFSET_MODE, true),
    size: Number(statView.getBigInt64(C.STAT_OFFSET_SIZE, true)),
    device: statView.getBigUint64(C.STAT_OFFSET_DEV, true),
    inode: statView.getBigUint64(C.STAT_OFFSET_INO, true),
  };
}

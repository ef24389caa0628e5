// Opening a structure that lives in a shared memory region (a ring, a buffer): the region
// must carry the structure's magic number and be as large as its header says.
import { ERRNO } from "../ffi/constants.ts";
import { ErrnoError } from "../ffi/errno.ts";
import type { OwnershipOptions } from "./_owner.ts";
import { SHM_NAME_MAX, validateOptions, validatePosixName } from "./_validate.ts";
import { SharedMemory } from "./shared_memory.ts";

/**
 * Opens the region named in `options` and checks it with `isValid` (which must read
 * the header only if the region is at least that large). Closes it and throws an
 * `ErrnoError` (EINVAL) naming `what` when it is not such a structure. The ownership
 * options in `options` (`allowModes`, `allowOtherOwners`) go to {@link SharedMemory.open}.
 */
export function openLayout(
  options: unknown,
  what: string,
  isValid: (shm: SharedMemory) => boolean,
): SharedMemory {
  const checked = validateOptions<{ name: string } & OwnershipOptions>(options, what);
  const name = validatePosixName(checked.name, what, SHM_NAME_MAX);
  const { allowModes, allowOtherOwners } = checked;
  const shm = SharedMemory.open({ name, allowModes, allowOtherOwners });
  let valid = false;
  try {
    valid = isValid(shm);
  } finally {
    if (!valid) shm.close();
  }
  if (!valid) {
    throw new ErrnoError(ERRNO.EINVAL, "open", {
      objectName: name,
      message: `Shared memory "${name}" is not a ${what}`,
    });
  }
  return shm;
}

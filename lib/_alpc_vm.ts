// The in-place path of ALPC: copying a peer's pinned buffer with process_vm_readv, or
// writing a reply into the buffer a requester lent with process_vm_writev. Both need the
// same right as ptrace; a refusal is explained with its remedy. The kernel checks that
// right against whatever runs at the pid NOW, which need not be what connected: a client
// may have executed a set-user-ID program since, or died and left its pid to another
// process. So the peer's user ids must still be those SO_PEERCRED recorded, before (and,
// for a read, after) the copy: otherwise a privileged server would read or write a
// process the client had no right to.
import { ERRNO } from "../ffi/constants.ts";
import {
  errnoCode,
  type ErrnoError,
  errnoError,
  lastErrno,
  PermissionDeniedError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import type { PeerCredentials } from "./_unix_socket.ts";

const VM_CHUNK = 1 << 30;

/**
 * Throws `PermissionDeniedError` unless the process at `peer.pid` still runs with every
 * user id (real, effective, saved, filesystem) equal to the uid recorded at connect, or
 * an error (ESRCH) when no process runs there.
 */
export function assertPeerUnchanged(peer: PeerCredentials, syscall: string, name: string): void {
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${peer.pid}/status`);
  } catch {
    throw errnoError(ERRNO.ESRCH, syscall, {
      objectName: name,
      message: `${syscall} of process ${peer.pid} refused on ALPC port "${name}": the peer ` +
        `is gone`,
    });
  }
  const ids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
  if (ids === null || ids.slice(1).some((id) => Number(id) !== peer.uid)) {
    throw new PermissionDeniedError(ERRNO.EPERM, syscall, {
      objectName: name,
      message: `${syscall} of process ${peer.pid} refused on ALPC port "${name}": that ` +
        `process now runs as uid ${ids?.slice(1).join("/") ?? "unknown"}, not as uid ` +
        `${peer.uid} that connected (it changed its credentials, or the pid was reused). ` +
        `Remedy: give the port a section at least as large as the message (sectionSize)`,
    });
  }
}

export function pointerOf(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

/**
 * Copies `from` into the peer's memory at `address` with process_vm_writev on the thread
 * pool (errno learnt as in {@link readPeerMemory}).
 */
export async function writePeerMemory(
  peer: PeerCredentials,
  address: bigint,
  from: Uint8Array,
  name: string,
): Promise<void> {
  const { symbols } = libc();
  const { pid } = peer;
  assertPeerUnchanged(peer, "process_vm_writev", name);
  let done = 0;
  while (done < from.length) {
    const count = Math.min(from.length - done, VM_CHUNK);
    const local = new BigUint64Array([pointerOf(from.subarray(done)), BigInt(count)]);
    const remote = new BigUint64Array([address + BigInt(done), BigInt(count)]);
    const localBytes = new Uint8Array(local.buffer);
    const remoteBytes = new Uint8Array(remote.buffer);
    const put = Number(
      await symbols.process_vm_writev_async(pid, localBytes, 1n, remoteBytes, 1n, 0n),
    );
    if (put > 0) {
      done += put;
      continue;
    }
    local[1] = 1n;
    remote[1] = 1n;
    const retried = symbols.process_vm_writev(pid, localBytes, 1n, remoteBytes, 1n, 0n);
    if (retried > 0n) {
      done += 1; // that byte moved: progress, so a peer toggling its mapping cannot loop this
      continue;
    }
    throw vmError(retried < 0n ? lastErrno() : ERRNO.EFAULT, "process_vm_writev", pid, name);
  }
}

/**
 * Copies the peer's `length` bytes at `address` into `into` with process_vm_readv on the
 * thread pool. Failures are repeated for one byte on this thread to learn errno; EPERM
 * is explained with its remedy.
 */
export async function readPeerMemory(
  peer: PeerCredentials,
  address: bigint,
  into: Uint8Array,
  name: string,
): Promise<void> {
  const { symbols } = libc();
  const { pid } = peer;
  assertPeerUnchanged(peer, "process_vm_readv", name);
  let done = 0;
  while (done < into.length) {
    const count = Math.min(into.length - done, VM_CHUNK);
    const local = new BigUint64Array([
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(into.subarray(done)))),
      BigInt(count),
    ]);
    const remote = new BigUint64Array([address + BigInt(done), BigInt(count)]);
    const got = Number(
      await symbols.process_vm_readv_async(
        pid,
        new Uint8Array(local.buffer),
        1n,
        new Uint8Array(remote.buffer),
        1n,
        0n,
      ),
    );
    if (got > 0) {
      done += got;
      continue;
    }
    local[1] = 1n;
    remote[1] = 1n;
    const retried = symbols.process_vm_readv(
      pid,
      new Uint8Array(local.buffer),
      1n,
      new Uint8Array(remote.buffer),
      1n,
      0n,
    );
    if (retried > 0n) {
      done += 1; // that byte moved: progress, so a peer toggling its mapping cannot loop this
      continue;
    }
    throw vmError(retried < 0n ? lastErrno() : ERRNO.EFAULT, "process_vm_readv", pid, name);
  }
  // Still the same: what was read came from the process that connected (as it was).
  assertPeerUnchanged(peer, "process_vm_readv", name);
}

/** The error of a failed process_vm_readv/writev, naming the remedy for EPERM. */
export function vmError(errno: number, syscall: string, pid: number, name: string): ErrnoError {
  if (errno === ERRNO.EPERM || errno === ERRNO.EACCES) {
    let scope = "unknown";
    try {
      scope = Deno.readTextFileSync("/proc/sys/kernel/yama/ptrace_scope").trim();
    } catch { /* no Yama */ }
    return new PermissionDeniedError(errno, syscall, {
      objectName: name,
      message:
        `${syscall} of process ${pid} was denied (${errno === ERRNO.EPERM ? "EPERM" : "EACCES"}) ` +
        `on ALPC port "${name}": the kernel allows reading another process's memory only with ` +
        `ptrace permission (same user and /proc/sys/kernel/yama/ptrace_scope <= 1, now ` +
        `${scope}; or CAP_SYS_PTRACE). Remedy: give the port a section at least as large as ` +
        `the message (sectionSize), lower ptrace_scope, or run both sides as the same user`,
    });
  }
  return errnoError(errno, syscall, {
    objectName: name,
    message: `${syscall} of process ${pid} failed on ALPC port "${name}": the peer's buffer ` +
      `is gone or was never there (${errnoCode(errno)})`,
  });
}

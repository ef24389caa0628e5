// Waiting for a descriptor (pipe, FIFO, POSIX message queue) to become ready.
import { libc } from "../ffi/libc.ts";

/**
 * Waits on a pool thread, at most `ms`, until `fd` is ready for `events` (poll(2)).
 * Its errno is lost there and not needed: the caller retries on this thread.
 */
export async function pollReady(fd: number, events: number, ms: number): Promise<void> {
  const pollfd = new Int32Array(2);
  pollfd[0] = fd;
  pollfd[1] = events;
  await libc().symbols.poll_async(pollfd, 1n, Math.max(0, Math.ceil(ms)));
}

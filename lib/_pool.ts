// Small received messages, cut from shared chunks.
//
// Allocating an ArrayBuffer costs about 1 µs whatever its size, more than copying a
// small message. Messages up to POOL_MESSAGE_MAX bytes are therefore cut from a shared
// 64 KiB chunk (as Node.js does for small Buffers): such a message's `.buffer` is the
// chunk, so use its byteOffset, or copy it with slice() to own a standalone buffer.
/** Messages up to this many bytes are cut from the pool. */
export const POOL_MESSAGE_MAX = 1024;
const POOL_CHUNK = 64 * 1024;
let pool = new Uint8Array(POOL_CHUNK);
/** An Int32Array over the current chunk (pooled messages start 8-aligned in it). */
export let poolWords = new Int32Array(pool.buffer);
let poolOffset = 0;

/** A Uint8Array of `length` bytes: from the pool when small, else its own buffer. */
export function allocateMessage(length: number): Uint8Array {
  // Callers validate lengths read from shared memory; this keeps the pool itself safe.
  if (!(length >= 0 && length <= 2 ** 30)) throw new RangeError(`Invalid message length ${length}`);
  if (length > POOL_MESSAGE_MAX) return new Uint8Array(length);
  // A user may transfer a pooled message's buffer (postMessage, transfer()), which
  // detaches the whole chunk: start a new one.
  if (poolOffset + length > POOL_CHUNK || pool.buffer.detached) {
    pool = new Uint8Array(POOL_CHUNK);
    poolWords = new Int32Array(pool.buffer);
    poolOffset = 0;
  }
  const message = pool.subarray(poolOffset, poolOffset + length);
  poolOffset = (poolOffset + length + 7) & ~7;
  return message;
}

// The textbook bounded buffer (lib/bounded_buffer.ts: `in`, `out`, BUFFER_SIZE slots of
// one item size) between two deno processes, one-way (same workload as
// bench/c/bounded_buffer.c).
// Usage: bounded_buffer.ts --size=ITEM_BYTES --count=N --slots=BUFFER_SIZE
import { BoundedBuffer } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const slots = Number(args.slots);
const TIMEOUT = { timeout: 30_000 };

function failed(): never {
  throw new Error("the buffer ended early");
}

if (args.role === "peer") {
  using buffer = BoundedBuffer.open({ name: args.name });
  const item = new Uint8Array(size);
  for (let i = 0; i < count; i++) {
    item[0] = i & 0xff;
    if (!buffer.trySend(item)) await buffer.send(item, TIMEOUT);
  }
} else {
  using buffer = BoundedBuffer.create({ bufferSize: slots, itemSize: size });
  try {
    const peer = spawnPeer(import.meta.url, [
      `--name=${buffer.name}`,
      `--size=${size}`,
      `--count=${count}`,
      `--slots=${slots}`,
    ]);
    (buffer.tryReceive() ?? await buffer.receive(TIMEOUT)) ?? failed();
    const started = performance.now();
    for (let i = 1; i < count; i++) {
      const item = (buffer.tryReceive() ?? await buffer.receive(TIMEOUT)) ?? failed();
      if (item[0] !== (i & 0xff) || item.length !== size) throw new Error(`item ${i} is wrong`);
    }
    const seconds = (performance.now() - started) / 1000;
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    printResult(count - 1, (count - 1) * size, seconds);
  } finally {
    buffer.unlink();
  }
}

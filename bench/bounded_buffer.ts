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
// Untimed items first (as sem_pingpong.ts): the peer's start-up and the first JIT tiers
// stay out of the figure.
const warmup = Math.max(1, Math.floor(count / 10));

function failed(): never {
  throw new Error("the buffer ended early");
}

if (args.role === "peer") {
  using buffer = BoundedBuffer.open({ name: args.name });
  const item = new Uint8Array(size);
  for (let i = 0; i < warmup + count; i++) {
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
    const check = (i: number, item: Uint8Array) => {
      if (item[0] !== (i & 0xff) || item.length !== size) throw new Error(`item ${i} is wrong`);
    };
    for (let i = 0; i < warmup; i++) {
      check(i, (buffer.tryReceive() ?? await buffer.receive(TIMEOUT)) ?? failed());
    }
    const started = performance.now();
    for (let i = warmup; i < warmup + count; i++) {
      check(i, (buffer.tryReceive() ?? await buffer.receive(TIMEOUT)) ?? failed());
    }
    const seconds = (performance.now() - started) / 1000;
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    printResult(count, count * size, seconds);
  } finally {
    buffer.unlink();
  }
}

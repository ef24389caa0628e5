// The message ring between two deno processes (same workloads as bench/c/ring.c).
// Usage: ring.ts --mode=throughput|pingpong --size=BYTES --count=N --capacity=BYTES
import { MessageRing } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const capacity = Number(args.capacity);
const pingpong = args.mode === "pingpong";
// --allocate: receive() a new message each time (as a mailbox does) instead of into one
// reused buffer.
const allocate = args.allocate === "true";
// Untimed messages first (as sem_pingpong.ts): the peer's start-up and the first JIT
// tiers stay out of the figure.
const warmup = Math.max(1, Math.floor(count / 10));

// The fast-path idiom: await only when the non-waiting form cannot complete. Like the C
// program, receive into one reused buffer.
const received = new Uint8Array(size);

function failed(): never {
  throw new Error("the ring ended early");
}

if (args.role === "peer") {
  using forward = MessageRing.open({ name: args.forward });
  using backward = MessageRing.open({ name: args.backward });
  if (pingpong) {
    for (let i = 0; i < warmup + count; i++) {
      const length = forward.tryReceiveInto(received) ??
        await forward.receiveInto(received, { timeout: 30_000 }) ?? failed();
      const reply = received.subarray(0, length);
      if (!backward.trySend(reply)) await backward.send(reply, { timeout: 30_000 });
    }
  } else {
    const message = new Uint8Array(size);
    for (let i = 0; i < warmup + count; i++) {
      message[0] = i & 0xff;
      if (!forward.trySend(message)) await forward.send(message, { timeout: 30_000 });
    }
  }
} else {
  using forward = MessageRing.create({ capacity });
  using backward = MessageRing.create({ capacity });
  try {
    const peer = spawnPeer(import.meta.url, [
      `--forward=${forward.name}`,
      `--backward=${backward.name}`,
      `--mode=${args.mode}`,
      `--size=${size}`,
      `--count=${count}`,
      `--capacity=${capacity}`,
    ]);
    if (pingpong) {
      const message = new Uint8Array(size);
      const samples = new Float64Array(count);
      for (let i = 0; i < warmup; i++) {
        if (!forward.trySend(message)) await forward.send(message, { timeout: 30_000 });
        if (backward.tryReceiveInto(received) === undefined) {
          await backward.receiveInto(received, { timeout: 30_000 }) ?? failed();
        }
      }
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        if (!forward.trySend(message)) await forward.send(message, { timeout: 30_000 });
        if (backward.tryReceiveInto(received) === undefined) {
          await backward.receiveInto(received, { timeout: 30_000 }) ?? failed();
        }
        samples[i] = (performance.now() - t) * 1000;
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count, count * size, seconds, samples);
    } else {
      for (let i = 0; i < warmup; i++) {
        const length = forward.tryReceiveInto(received) ??
          await forward.receiveInto(received, { timeout: 30_000 }) ?? failed();
        if (received[0] !== (i & 0xff) || length !== size) {
          throw new Error(`message ${i} is wrong`);
        }
      }
      const started = performance.now();
      const end = warmup + count;
      for (let i = warmup; i < end && allocate; i++) {
        const message = forward.tryReceive() ?? await forward.receive({ timeout: 30_000 }) ??
          failed();
        if (message[0] !== (i & 0xff) || message.length !== size) {
          throw new Error(`message ${i} is wrong`);
        }
      }
      for (let i = warmup; i < end && !allocate; i++) {
        const length = forward.tryReceiveInto(received) ??
          await forward.receiveInto(received, { timeout: 30_000 }) ?? failed();
        if (received[0] !== (i & 0xff) || length !== size) {
          throw new Error(`message ${i} is wrong`);
        }
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count, count * size, seconds);
    }
  } finally {
    forward.unlink();
    backward.unlink();
  }
}

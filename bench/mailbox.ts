// Mailboxes between two deno processes, next to the message ring they are built on
// (same workloads as ring.ts and bench/c/ring.c).
// Usage: mailbox.ts --mode=throughput|pingpong --size=BYTES --count=N --capacity=MESSAGES
import { Mailbox } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const capacity = Number(args.capacity);
const pingpong = args.mode === "pingpong";
const TIMEOUT = { timeout: 30_000 };
// Untimed messages first (as sem_pingpong.ts): the peer's start-up and the first JIT
// tiers stay out of the figure.
const warmup = Math.max(1, Math.floor(count / 10));

if (args.role === "peer") {
  using forward = Mailbox.open({ name: args.forward, senderName: "peer" });
  using backward = Mailbox.open({ name: args.backward, senderName: "peer" });
  if (pingpong) {
    for (let i = 0; i < warmup + count; i++) {
      const { data } = forward.tryReceive() ?? await forward.receive(TIMEOUT);
      if (!backward.trySend(data)) await backward.send(data, TIMEOUT);
    }
  } else {
    const message = new Uint8Array(size);
    for (let i = 0; i < warmup + count; i++) {
      message[0] = i & 0xff;
      if (!forward.trySend(message)) await forward.send(message, TIMEOUT);
    }
  }
} else {
  const options = { capacity, maxMessageSize: size };
  using forward = Mailbox.create(options);
  using backward = Mailbox.create(options);
  try {
    const peer = spawnPeer(import.meta.url, [
      `--forward=${forward.name}`,
      `--backward=${backward.name}`,
      `--mode=${args.mode}`,
      `--size=${size}`,
      `--count=${count}`,
    ]);
    if (pingpong) {
      const message = new Uint8Array(size);
      const samples = new Float64Array(count);
      for (let i = 0; i < warmup; i++) {
        if (!forward.trySend(message)) await forward.send(message, TIMEOUT);
        if (backward.tryReceive() === undefined) await backward.receive(TIMEOUT);
      }
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        if (!forward.trySend(message)) await forward.send(message, TIMEOUT);
        if (backward.tryReceive() === undefined) await backward.receive(TIMEOUT);
        samples[i] = (performance.now() - t) * 1000;
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count, count * size, seconds, samples);
    } else {
      const check = (i: number, data: Uint8Array) => {
        if (data[0] !== (i & 0xff) || data.length !== size) {
          throw new Error(`message ${i} is wrong`);
        }
      };
      for (let i = 0; i < warmup; i++) {
        check(i, (forward.tryReceive() ?? await forward.receive(TIMEOUT)).data);
      }
      const started = performance.now();
      for (let i = warmup; i < warmup + count; i++) {
        check(i, (forward.tryReceive() ?? await forward.receive(TIMEOUT)).data);
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count, count * size, seconds);
    }
  } finally {
    forward.delete();
    backward.delete();
  }
}

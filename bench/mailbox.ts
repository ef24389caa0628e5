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

if (args.role === "peer") {
  using forward = Mailbox.open({ name: args.forward, senderName: "peer" });
  using backward = Mailbox.open({ name: args.backward, senderName: "peer" });
  if (pingpong) {
    for (let i = 0; i < count; i++) {
      const { data } = forward.tryReceive() ?? await forward.receive(TIMEOUT);
      if (!backward.trySend(data)) await backward.send(data, TIMEOUT);
    }
  } else {
    const message = new Uint8Array(size);
    for (let i = 0; i < count; i++) {
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
      await forward.receive(TIMEOUT);
      const started = performance.now();
      for (let i = 1; i < count; i++) {
        const { data } = forward.tryReceive() ?? await forward.receive(TIMEOUT);
        if (data[0] !== (i & 0xff) || data.length !== size) {
          throw new Error(`message ${i} is wrong`);
        }
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count - 1, (count - 1) * size, seconds);
    }
  } finally {
    forward.delete();
    backward.delete();
  }
}

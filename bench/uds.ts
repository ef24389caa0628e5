// One-way messages over a Unix-domain stream socket between two deno processes (same
// workload as bench/c/uds.c): the peer writes each message with its own write().
// Usage: uds.ts --size=BYTES --count=N
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);

if (args.role === "peer") {
  using connection = await Deno.connect({ transport: "unix", path: args.path });
  const message = new Uint8Array(size);
  for (let i = 0; i < count; i++) {
    for (let done = 0; done < size;) done += await connection.write(message.subarray(done));
  }
} else {
  const directory = await Deno.makeTempDir();
  const path = `${directory}/bench.sock`;
  try {
    using listener = Deno.listen({ transport: "unix", path });
    const peer = spawnPeer(import.meta.url, [
      `--path=${path}`,
      `--size=${size}`,
      `--count=${count}`,
    ]);
    using connection = await listener.accept();
    const buffer = new Uint8Array(65536);
    const total = size * count;
    let received = 0;
    let started = 0;
    while (received < total) {
      const n = await connection.read(buffer);
      if (n === null) throw new Error("the peer closed early");
      if (received === 0) started = performance.now();
      received += n;
    }
    const seconds = (performance.now() - started) / 1000;
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    printResult(count, total, seconds);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

// Named-semaphore ping-pong between two deno processes (same workload as
// bench/c/sem_pingpong.c). Usage: sem_pingpong.ts --rounds=N
import { NamedSemaphore } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const rounds = Number(args.rounds ?? 20000);
const warmup = Math.floor(rounds / 10);

if (args.role === "peer") {
  using ping = NamedSemaphore.open({ name: args.ping });
  using pong = NamedSemaphore.open({ name: args.pong });
  for (let i = 0; i < warmup + rounds; i++) {
    await ping.wait({ timeout: 30_000 });
    pong.post();
  }
} else {
  using ping = NamedSemaphore.create();
  using pong = NamedSemaphore.create();
  try {
    const peer = spawnPeer(import.meta.url, [
      `--ping=${ping.name}`,
      `--pong=${pong.name}`,
      `--rounds=${rounds}`,
    ]);
    for (let i = 0; i < warmup; i++) {
      ping.post();
      await pong.wait({ timeout: 30_000 });
    }
    const samples = new Float64Array(rounds);
    const start = performance.now();
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      ping.post();
      await pong.wait({ timeout: 30_000 });
      samples[i] = (performance.now() - t) * 1000;
    }
    const seconds = (performance.now() - start) / 1000;
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    printResult(rounds, 0, seconds, samples);
  } finally {
    ping.unlink();
    pong.unlink();
  }
}

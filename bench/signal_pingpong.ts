// Signal round trip between two deno processes (same workload as
// bench/c/signal_pingpong.c): kill(peer, SIGUSR2) -> the peer's listener -> kill back.
// Usage: signal_pingpong.ts --rounds=N
import { onSignal, sendSignal } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const rounds = Number(args.rounds ?? 2000);
const warmup = Math.floor(rounds / 10);

// Resolves on each SIGUSR2; the listener stays installed for the whole run.
let next = Promise.withResolvers<void>();
const listening = onSignal("SIGUSR2", () => next.resolve());
const keepAlive = setInterval(() => {}, 1 << 30); // listeners do not keep the process alive

async function arrival(): Promise<void> {
  await next.promise;
  next = Promise.withResolvers<void>();
}

if (args.role === "peer") {
  const parent = Number(args.parent);
  sendSignal(parent, "SIGUSR2"); // ready: our listener is installed
  for (let i = 0; i < warmup + rounds; i++) {
    await arrival();
    sendSignal(parent, "SIGUSR2");
  }
} else {
  const peer = spawnPeer(import.meta.url, [`--parent=${Deno.pid}`, `--rounds=${rounds}`]);
  await arrival(); // the peer listens
  for (let i = 0; i < warmup; i++) {
    sendSignal(peer.pid, "SIGUSR2");
    await arrival();
  }
  const samples = new Float64Array(rounds);
  const started = performance.now();
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    sendSignal(peer.pid, "SIGUSR2");
    await arrival();
    samples[i] = (performance.now() - t) * 1000;
  }
  const seconds = (performance.now() - started) / 1000;
  if ((await peer.status).code !== 0) throw new Error("peer failed");
  printResult(rounds, 0, seconds, samples);
}
clearInterval(keepAlive);
listening[Symbol.dispose]();

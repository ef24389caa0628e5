// The file log between two deno processes (same workloads as bench/c/file_log.c).
//   --mode=throughput: the peer appends COUNT records of SIZE bytes, one append each;
//                      this process follows the log (inotify) until all arrived.
//   --mode=pingpong:   two logs; each side appends to one and waits, woken by inotify,
//                      for the other's record: a round trip is two notifications.
// Usage: file_log.ts --mode=throughput|pingpong --size=BYTES --count=N
import { FileLog, type FileLogReader } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const message = new Uint8Array(size);

async function next(reader: FileLogReader): Promise<Uint8Array> {
  return (reader.tryRead() ?? await reader.read({ timeout: 30_000 })).data;
}

if (args.role === "peer") {
  if (args.mode === "pingpong") {
    using there = FileLog.open(args.there, { create: false });
    using back = FileLog.open(args.back, { create: false });
    using reader = there.reader({ from: 0 });
    for (let i = 0; i < count; i++) await back.append(await next(reader));
  } else {
    using log = FileLog.open(args.path, { create: false });
    for (let i = 0; i < count; i++) await log.append(message);
  }
} else {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-bench-" });
  try {
    if (args.mode === "pingpong") {
      using there = FileLog.open(`${directory}/there`);
      using back = FileLog.open(`${directory}/back`);
      using reader = back.reader({ from: 0 });
      const peer = spawnPeer(import.meta.url, [
        "--mode=pingpong",
        `--size=${size}`,
        `--count=${count}`,
        `--there=${directory}/there`,
        `--back=${directory}/back`,
      ]);
      const samples = new Float64Array(count);
      const started = performance.now();
      for (let i = 0; i < count; i++) {
        const t = performance.now();
        await there.append(message);
        await next(reader);
        samples[i] = (performance.now() - t) * 1000;
      }
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count, count * size, seconds, samples);
    } else {
      using log = FileLog.open(`${directory}/log`);
      using reader = log.reader({ from: 0 });
      const peer = spawnPeer(import.meta.url, [
        "--mode=throughput",
        `--size=${size}`,
        `--count=${count}`,
        `--path=${directory}/log`,
      ]);
      await next(reader);
      const started = performance.now();
      for (let i = 1; i < count; i++) await next(reader);
      const seconds = (performance.now() - started) / 1000;
      if ((await peer.status).code !== 0) throw new Error("peer failed");
      printResult(count - 1, (count - 1) * size, seconds);
    }
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
}

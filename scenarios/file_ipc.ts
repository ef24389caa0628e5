// File-based IPC (Silberschatz, OSC, 3.5: the simplest technique is processes sharing a
// file; updates are hard to detect, and going through storage costs time). Part 1: two
// producer processes append to a shared log (framed records, an fcntl lock per append)
// while the consumer follows it with change notification (inotify); part 2: the same
// consumer polling the file every 10 ms. The trace prints each record's delivery latency.
// Part 3: a memory-mapped file written by one process and read by another after the
// first has exited: the contents live in the file, not in any process.
//
//   deno run -A --unstable-net scenarios/file_ipc.ts
import { FileLog, MappedFile } from "../mod.ts";
import { runRole, scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RECORDS_PER_PRODUCER = 4;
const LOG = "log (files)";
const MAPPED = "mapped file";

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

if (role === "producer") {
  using log = FileLog.open(values.log, { create: false });
  for (let i = 1; i <= RECORDS_PER_PRODUCER; i++) {
    await new Promise((resolve) => setTimeout(resolve, 15 + 10 * Math.random()));
    const text = `${values.name} #${i}`;
    const sequence = await log.append(
      encoder.encode(JSON.stringify({ text, pid: Deno.pid, sentAt: now() })),
      { timeout: 5000 },
    );
    traceEvent(values.name, "send", {
      object: LOG,
      label: text,
      text: `appended "${text}" as record ${sequence} (lock, write, unlock)`,
    });
  }
} else if (role === "map-writer") {
  using file = MappedFile.create(values.path, { size: 4096 });
  const text = `written by pid ${Deno.pid} before it exited`;
  const bytes = encoder.encode(text);
  file.bytes.set(bytes, 4);
  file.view(Uint32Array, 0, 1)[0] = bytes.length;
  traceEvent("writer", "create", {
    object: MAPPED,
    label: "open, posix_fallocate, mmap",
    text: `MappedFile.create: open(O_CREAT | O_EXCL), posix_fallocate(4096), mmap`,
  });
  traceEvent("writer", "send", {
    object: MAPPED,
    label: text,
    text: `stored "${text}" through the mapping; exiting`,
  });
} else if (role === "map-reader") {
  using file = MappedFile.open(values.path);
  const length = file.view(Uint32Array, 0, 1)[0];
  const text = decoder.decode(file.bytes.subarray(4, 4 + length));
  traceEvent("reader", "open", { object: MAPPED, label: "open, fstat, mmap" });
  traceEvent("reader", "receive", {
    object: MAPPED,
    label: text,
    text: `MappedFile.open: fstat says ${file.size} bytes; mmap; read "${text}"`,
  });
} else {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-scenario-" });
  try {
    const path = `${directory}/log`;
    using log = FileLog.open(path);
    traceEvent("consumer", "create", {
      object: LOG,
      label: "FileLog.open",
      text: `FileLog.open("${path}"): a directory of segment files and a lock file`,
    });
    const latencies: Record<string, number[]> = {};
    for (const notify of ["inotify", "poll"] as const) {
      using reader = log.reader({ from: "end", notify, pollInterval: 10 });
      trace(
        "consumer",
        notify === "inotify"
          ? "part 1: following the log, woken by inotify (IN_MODIFY on the directory)"
          : "part 2: following the log by looking at the file every 10 ms",
      );
      const producers = ["producer A", "producer B"].map((name) =>
        spawnRole(import.meta.url, "producer", { log: path, name })
      );
      const samples: number[] = [];
      for (let i = 0; i < 2 * RECORDS_PER_PRODUCER; i++) {
        const record = await reader.read({ timeout: 10_000 });
        const latency = now() - JSON.parse(decoder.decode(record.data)).sentAt;
        const { text, pid } = JSON.parse(decoder.decode(record.data));
        samples.push(latency);
        traceEvent("consumer", "receive", {
          object: LOG,
          label: text,
          text: `record ${record.sequence}: "${text}" from pid ${pid}, delivered in ${
            latency.toFixed(2)
          } ms`,
        });
      }
      for (const producer of producers) {
        if ((await producer.status).code !== 0) throw new Error("a producer failed");
      }
      latencies[notify] = samples.sort((a, b) => a - b);
    }
    const median = (samples: number[]) => samples[Math.floor(samples.length / 2)].toFixed(2);
    trace(
      "consumer",
      `median delivery: ${median(latencies.inotify)} ms with inotify, ` +
        `${median(latencies.poll)} ms polling every 10 ms`,
    );

    trace("main", "part 3: a memory-mapped file outlives the process that wrote it");
    const mapped = `${directory}/mapped`;
    await runRole(import.meta.url, "map-writer", { path: mapped });
    trace("main", `the writer has exited; ${mapped} still holds what it wrote`);
    await runRole(import.meta.url, "map-reader", { path: mapped });
  } finally {
    Deno.removeSync(directory, { recursive: true });
    traceEvent("main", "unlink", { object: LOG, label: "rm -r" });
    traceEvent("main", "unlink", { object: MAPPED, label: "rm -r" });
  }
}

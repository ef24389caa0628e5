// Pipes, FIFOs and Deno.Command stdio between two deno processes (same workloads as
// bench/c/pipe.c). The writer writes each message with its own write; the reader reads
// 64 KiB at a time until every byte arrived.
// Usage: pipe.ts --mode=throughput|fifo|pingpong|stdio --size=BYTES --count=N
import {
  createPipe,
  Fifo,
  inheritedPipeEnds,
  type PipeReader,
  type PipeWriter,
  spawnWithPipePair,
  spawnWithPipes,
} from "../mod.ts";
import { benchArgs, peerCommand, printResult } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const self = new URL(import.meta.url).pathname;
const peerArgs = [
  "run",
  "-A",
  self,
  "--role=peer",
  `--mode=${args.mode}`,
  `--size=${size}`,
  `--count=${count}`,
];

async function writeAll(writer: PipeWriter, message: Uint8Array): Promise<void> {
  const n = writer.tryWrite(message) ?? 0;
  if (n < message.length) await writer.write(message.subarray(n), { timeout: 30_000 });
}

async function readExactly(reader: PipeReader, buffer: Uint8Array): Promise<void> {
  for (let done = 0; done < buffer.length;) {
    const into = buffer.subarray(done);
    const n = reader.tryRead(into) ?? await reader.read(into, { timeout: 30_000 });
    if (n === null) throw new Error("EOF too early");
    done += n;
  }
}

async function receiveAll(reader: PipeReader): Promise<number> {
  const buffer = new Uint8Array(65536);
  const total = size * count;
  let received = 0;
  let started = 0;
  while (received < total) {
    const n = reader.tryRead(buffer) ?? await reader.read(buffer, { timeout: 30_000 });
    if (n === null) throw new Error("EOF too early");
    if (received === 0) started = performance.now();
    received += n;
  }
  return (performance.now() - started) / 1000;
}

const message = new Uint8Array(size);
if (args.role === "peer") {
  if (args.mode === "stdio") {
    for (let i = 0; i < count; i++) {
      for (let done = 0; done < size;) done += await Deno.stdout.write(message.subarray(done));
    }
  } else if (args.mode === "pingpong") {
    const { input, output } = inheritedPipeEnds({ input: "reader", output: "writer" });
    const buffer = new Uint8Array(size);
    for (let i = 0; i < count; i++) {
      await readExactly(input, buffer);
      await writeAll(output, buffer);
    }
  } else {
    using writer = args.mode === "fifo"
      ? await Fifo.openWriter(args.path, { timeout: 30_000 })
      : inheritedPipeEnds({ output: "writer" }).output;
    for (let i = 0; i < count; i++) await writeAll(writer, message);
  }
} else if (args.mode === "stdio") {
  const [executable, argv] = peerCommand(peerArgs);
  const child = new Deno.Command(executable, { args: argv, stdout: "piped" }).spawn();
  const total = size * count;
  let received = 0;
  let started = 0;
  for await (const chunk of child.stdout) {
    if (received === 0) started = performance.now();
    received += chunk.length;
  }
  const seconds = (performance.now() - started) / 1000;
  if (received !== total || (await child.status).code !== 0) throw new Error("stdio peer failed");
  printResult(count, total, seconds);
} else if (args.mode === "pingpong") {
  const [executable, argv] = peerCommand(peerArgs);
  const { child, reader, writer } = spawnWithPipePair(executable, { args: argv });
  const buffer = new Uint8Array(size);
  const samples = new Float64Array(count);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await writeAll(writer, message);
    await readExactly(reader, buffer);
    samples[i] = (performance.now() - t) * 1000;
  }
  const seconds = (performance.now() - started) / 1000;
  reader.close();
  writer.close();
  if ((await child.status).code !== 0) throw new Error("peer failed");
  printResult(count, count * size, seconds, samples);
} else if (args.mode === "fifo") {
  const directory = Deno.makeTempDirSync();
  const path = `${directory}/bench.fifo`;
  try {
    Fifo.create(path);
    const [executable, argv] = peerCommand([...peerArgs, `--path=${path}`]);
    const child = new Deno.Command(executable, { args: argv }).spawn();
    using reader = await Fifo.openReader(path, { timeout: 30_000 });
    const seconds = await receiveAll(reader);
    if ((await child.status).code !== 0) throw new Error("peer failed");
    printResult(count, size * count, seconds);
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
} else {
  const { reader, writer } = createPipe();
  using _reader = reader;
  const [executable, argv] = peerCommand(peerArgs);
  const child = spawnWithPipes(executable, { args: argv, ends: { output: writer } });
  const seconds = await receiveAll(reader);
  if ((await child.status).code !== 0) throw new Error("peer failed");
  printResult(count, size * count, seconds);
}

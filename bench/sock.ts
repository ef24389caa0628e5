// Framed messages and RPC calls between two deno processes over TCP (loopback) or a Unix
// socket (same workloads as bench/c/sock.c).
// Usage: sock.ts --mode=throughput|rpc --transport=tcp|unix --size=BYTES --count=N
import {
  FramedConnection,
  FramedServer,
  RpcClient,
  RpcServer,
  type SocketAddress,
} from "../mod.ts";
import { benchArgs, peerCommand, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);

function listenAddress(): SocketAddress {
  return args.transport === "tcp"
    ? { transport: "tcp", port: 0 }
    : { transport: "unix", path: `/tmp/deno-ipc-bench-${Deno.pid}.sock` };
}

if (args.role === "peer") {
  const address = JSON.parse(args.address) as SocketAddress;
  if (args.mode === "throughput") {
    using connection = await FramedConnection.connect(address);
    const message = new Uint8Array(size);
    // Keep a bounded number of sends in flight, as a fast caller would.
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      inFlight.push(connection.send(message));
      if (inFlight.length >= 64) await inFlight.shift();
    }
    await Promise.all(inFlight);
    await connection.closeWrite();
  } else {
    await using server = RpcServer.listen(address, {
      echo: (data: Uint8Array) => data,
    });
    console.log(JSON.stringify(server.address));
    await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  }
} else if (args.mode === "throughput") {
  using server = FramedServer.listen(listenAddress());
  const peer = spawnPeer(import.meta.url, [
    `--address=${JSON.stringify(server.address)}`,
    `--mode=throughput`,
    `--size=${size}`,
    `--count=${count}`,
  ]);
  using connection = await server.accept({ timeout: 30_000 });
  await connection.receive({ timeout: 30_000 });
  const started = performance.now();
  for (let i = 1; i < count; i++) {
    const message = await connection.receive({ timeout: 30_000 });
    if (message === null || message.length !== size) throw new Error(`message ${i} is wrong`);
  }
  const seconds = (performance.now() - started) / 1000;
  if ((await peer.status).code !== 0) throw new Error("peer failed");
  printResult(count - 1, (count - 1) * size, seconds);
} else {
  // The peer serves; this process calls echo(bytes) and times each call.
  const [executable, argv] = peerCommand([
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "--role=peer",
    `--address=${JSON.stringify(listenAddress())}`,
    "--mode=rpc",
  ]);
  const peer = new Deno.Command(executable, {
    args: argv,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "";
  const address = JSON.parse(line.slice(0, line.indexOf("\n"))) as SocketAddress;
  using client = await RpcClient.connect<{ echo(data: Uint8Array): Uint8Array }>(address);
  const payload = new Uint8Array(size);
  for (let i = 0; i < 100; i++) await client.stub.echo(payload); // warm up
  const samples = new Float64Array(count);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await client.stub.echo(payload);
    samples[i] = (performance.now() - t) * 1000;
  }
  const seconds = (performance.now() - started) / 1000;
  client.close();
  peer.kill("SIGTERM");
  await peer.status;
  reader.releaseLock();
  await peer.stdout.cancel().catch(() => {});
  printResult(count, count * size, seconds, samples);
}

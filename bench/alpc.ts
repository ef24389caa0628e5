// Round trips through ALPC (lib/alpc.ts: each message by the path its size calls for)
// versus the same echo through the project's framed Unix socket, between two deno
// processes. The peer echoes every request with a reply of the same size.
// --mode=rpc makes the same echo an RPC call (RpcServer/RpcClient) over ALPC or over the
// Unix socket transport.
// Usage: alpc.ts [--mode=rpc] --transport=alpc|framed --size=BYTES --count=N
import {
  AlpcClient,
  AlpcServer,
  FramedConnection,
  FramedServer,
  type RpcAddress,
  RpcClient,
  RpcServer,
} from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const MiB = 2 ** 20;
// A section twice the message (room for the next one while the last is released), when
// the message fits a reasonable section; past that the in-place path carries it.
const section = size > 256 && size <= 8 * MiB ? Math.max(4 * MiB, 2 * size) : 0;
const maxFrameSize = 2 * size + 1024;

if (args.mode === "rpc") {
  if (args.role === "peer") {
    using client = await RpcClient.connect<{ echo(bytes: Uint8Array): Uint8Array }>(
      JSON.parse(args.address) as RpcAddress,
      { maxFrameSize, sectionSize: Math.max(section, 2 ** 20) },
    );
    const message = new Uint8Array(size).fill(7);
    const samples = new Float64Array(count);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      if ((await client.stub.echo(message)).length !== size) throw new Error("short reply");
      samples[i] = (performance.now() - t) * 1000;
    }
    printResult(count, 2 * size * count, (performance.now() - started) / 1000, samples);
  } else {
    const address: RpcAddress = args.transport === "alpc"
      ? { transport: "alpc", name: `bench-rpc-${Deno.pid}` }
      : { transport: "unix", path: `/tmp/deno-ipc-bench-alpc-rpc-${Deno.pid}.sock` };
    await using _server = RpcServer.listen(address, { echo: (bytes: Uint8Array) => bytes }, {
      maxFrameSize,
      replySectionSize: Math.max(section, 2 ** 20),
    });
    const peer = spawnPeer(import.meta.url, [
      "--mode=rpc",
      `--address=${JSON.stringify(address)}`,
      `--size=${size}`,
      `--count=${count}`,
    ]);
    if ((await peer.status).code !== 0) throw new Error("peer failed");
  }
} else if (args.role === "peer") {
  if (args.transport === "alpc") {
    using client = await AlpcClient.connect(args.name, { sectionSize: section, timeout: 10_000 });
    const message = new Uint8Array(size).fill(7);
    const samples = new Float64Array(count);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      const reply = await client.sendWaitReceive(message);
      if (reply.data.length !== size) throw new Error("short reply");
      reply.release();
      samples[i] = (performance.now() - t) * 1000;
    }
    printResult(count, 2 * size * count, (performance.now() - started) / 1000, samples);
  } else {
    using connection = await FramedConnection.connect({ transport: "unix", path: args.path }, {
      maxFrameSize,
    });
    const message = new Uint8Array(size).fill(7);
    const samples = new Float64Array(count);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      await connection.send(message);
      const reply = await connection.receive();
      if (reply?.length !== size) throw new Error("short reply");
      samples[i] = (performance.now() - t) * 1000;
    }
    printResult(count, 2 * size * count, (performance.now() - started) / 1000, samples);
  }
} else {
  // The parent serves; the peer measures and prints the result line.
  const spawn = (extra: string[]) =>
    spawnPeer(import.meta.url, [
      `--transport=${args.transport}`,
      `--size=${size}`,
      `--count=${count}`,
      ...extra,
    ]);
  if (args.transport === "alpc") {
    const name = `bench-${Deno.pid}`;
    using server = AlpcServer.create(name, { replySectionSize: section });
    const peer = spawn([`--name=${name}`]);
    for await (const event of server) {
      if (event.type === "connect") await event.request.accept();
      else if (event.type === "request") await event.message.reply(event.message.data);
      else if (event.type !== "datagram") break;
    }
    if ((await peer.status).code !== 0) throw new Error("peer failed");
  } else {
    const path = `/tmp/deno-ipc-bench-alpc-${Deno.pid}.sock`;
    using server = FramedServer.listen({ transport: "unix", path }, { maxFrameSize });
    const peer = spawn([`--path=${path}`]);
    using connection = await server.accept();
    for await (const message of connection) await connection.send(message);
    if ((await peer.status).code !== 0) throw new Error("peer failed");
  }
}

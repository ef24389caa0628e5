// Mach ports between two deno processes (same workloads as bench/c/mach.c, which uses a
// SOCK_SEQPACKET pair and SCM_RIGHTS directly):
//   --mode=oneway --size=B --count=N  the peer sends N messages of B bytes to a port
//                                     (queue limit 1024); the parent receives them
//   --mode=rpc --count=N              the parent sends N requests, each with a send-once
//                                     reply right, to a server peer that replies
//   --mode=ool --size=B --count=N     the peer fills a region of B bytes once, seals it,
//                                     and sends it N times out of line; the parent maps
//                                     each and reads one byte per page
//   --mode=inline --size=B --count=N  the same B bytes sent N times copied inline, in
//                                     64 KiB messages
import { MAX_INLINE_BODY, OutOfLineMemory, ReceiveRight, SendRight } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const mode = args.mode;
const size = Number(args.size ?? 64);
const count = Number(args.count);
const PAGE = 4096;

function spawn(token: string): Deno.ChildProcess {
  return spawnPeer(import.meta.url, [
    `--mode=${mode}`,
    `--size=${size}`,
    `--count=${count}`,
    `--token=${token}`,
  ]);
}

if (args.role === "peer") {
  if (mode === "rpc") {
    using server = ReceiveRight.fromInherited(args.token);
    for (let i = 0; i < count; i++) {
      using request = await server.receive();
      await request.reply!.send({ id: request.id, body: request.body });
    }
  } else {
    using port = SendRight.fromInherited(args.token);
    if (mode === "oneway") {
      const body = new Uint8Array(size);
      for (let i = 0; i < count; i++) await port.send({ id: i, body });
    } else if (mode === "ool") {
      // The data exists once, sealed: each send passes the same pages.
      using region = OutOfLineMemory.allocate(size);
      region.bytes.fill(7);
      region.seal();
      for (let i = 0; i < count; i++) await port.send({ id: i, memory: [region] });
    } else {
      const data = new Uint8Array(size).fill(7);
      for (let i = 0; i < count; i++) {
        for (let done = 0; done < size; done += MAX_INLINE_BODY) {
          await port.send({ id: i, body: data.subarray(done, done + MAX_INLINE_BODY) });
        }
      }
    }
  }
} else if (mode === "rpc") {
  const server = ReceiveRight.allocate({ label: "bench server" });
  using toServer = server.makeSend();
  const token = server.inheritable();
  const peer = spawn(token.token);
  token[Symbol.dispose]();
  using replies = ReceiveRight.allocate({ label: "bench replies" });
  const body = new Uint8Array(64);
  const samples = new Float64Array(count);
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const sent = performance.now();
    await toServer.send({ id: i, body, reply: { makeSendOnce: replies } });
    using reply = await replies.receive();
    if (reply.id !== i) throw new Error(`reply ${reply.id} for request ${i}`);
    samples[i] = (performance.now() - sent) * 1000;
  }
  const seconds = (performance.now() - started) / 1000;
  if ((await peer.status).code !== 0) throw new Error("peer failed");
  printResult(count, count * 64, seconds, samples);
} else {
  using port = ReceiveRight.allocate({ queueLimit: 1024, label: "bench" });
  using send = port.makeSend();
  const token = send.inheritable();
  const peer = spawn(token.token);
  token[Symbol.dispose]();
  send.close();
  const messages = mode === "inline" ? count * Math.ceil(size / MAX_INLINE_BODY) : count;
  let started = 0;
  let checksum = 0;
  for (let i = 0; i < messages; i++) {
    using message = await port.receive();
    if (i === 0) started = performance.now();
    if (mode === "ool") {
      const bytes = message.memory[0].bytes;
      for (let at = 0; at < bytes.length; at += PAGE) checksum += bytes[at];
    } else {
      checksum += message.body[0] ?? 0;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if ((await peer.status).code !== 0) throw new Error("peer failed");
  if (checksum < 0) throw new Error("unreachable");
  printResult(count, size * count, seconds);
}

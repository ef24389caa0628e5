// Frame-level fuzz of the RPC server from raw sockets: hostile and truncated frames, huge
// length claims, floods of connections and of calls. The server runs in a child process
// with small limits; the test checks that it stays up, that its memory stays within a
// bound set by those limits (VmRSS from /proc, and the ArrayBuffer memory the server
// reports after a full GC), and that a well-behaved client is served throughout.
// DENO_IPC_PROPERTY_RUNS sets the number of hostile streams per transport.
import assert from "node:assert/strict";
import fc from "fast-check";
import { marshal, RpcClient, ServerBusyError, type SocketAddress } from "../mod.ts";
import { Child, delay, ipcTest, propertyRuns } from "./_helpers.ts";

const LIMITS = { maxConnections: 32, maxConcurrentCalls: 8, maxFrameSize: 2 ** 20 };
const KIB = 1024;
const MIB = 1024 * KIB;
// What one connection may hold: its receive buffer (a frame plus one 64 KiB read, grown
// with what arrived) and its running calls' frames; the floods below send at most 64 KiB
// of body per connection. Then room for the runtime's own noise.
const PER_CONNECTION = 4 * 64 * KIB;
const EXTERNAL_BOUND = LIMITS.maxConnections * PER_CONNECTION + 16 * MIB;
const RSS_BOUND = 2 * EXTERNAL_BOUND + 64 * MIB;

type Limited = {
  add(a: number, b: number): number;
  slow(ms: number): Promise<number>;
  memory(): { rss: number; external: number };
};

function header(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

function frame(body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(4 + body.length);
  bytes.set(header(body.length));
  bytes.set(body, 4);
  return bytes;
}

function safeMarshal(value: unknown): Uint8Array {
  try {
    return marshal(value);
  } catch {
    return new Uint8Array([0xc1]);
  }
}

// Pieces of a hostile byte stream; a stream is several, concatenated, maybe cut short.
const piece = fc.oneof(
  fc.uint8Array({ maxLength: 64 }), // noise
  fc.tuple(fc.nat({ max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 64 })) // any claim
    .map(([length, body]) => new Uint8Array([...header(length), ...body])),
  fc.constantFrom(2 ** 32 - 1, 2 ** 31, LIMITS.maxFrameSize + 1, LIMITS.maxFrameSize)
    .map(header), // huge claims with nothing after them
  fc.tuple(fc.integer(), fc.string(), fc.anything()) // calls of any shape
    .map(([id, name, args]) => frame(safeMarshal([0, id, name, args]))),
  fc.anything().map((value) => frame(safeMarshal(value))),
  fc.constant(frame(safeMarshal([0, 1, "add", [1, 2]]))), // a good call among the rest
);
const hostileStream = fc.tuple(fc.array(piece, { minLength: 1, maxLength: 8 }), fc.nat())
  .map(([pieces, cut]) => {
    const bytes = new Uint8Array(pieces.reduce((sum, p) => sum + p.length, 0));
    let at = 0;
    for (const p of pieces) {
      bytes.set(p, at);
      at += p.length;
    }
    return bytes.subarray(0, bytes.length === 0 ? 0 : 1 + (cut % bytes.length));
  });

function vmRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = /VmRSS:\s+(\d+) kB/.exec(status);
  assert.ok(kib, "no VmRSS in /proc/PID/status");
  return Number(kib[1]) * KIB;
}

async function rawConnect(address: SocketAddress): Promise<Deno.Conn> {
  return address.transport === "tcp"
    ? await Deno.connect({ hostname: address.hostname, port: address.port })
    : await Deno.connect({ transport: "unix", path: address.path });
}

async function writeQuietly(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
  } catch { /* the server closed it: that is its right */ }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

async function listenAddress(transport: "tcp" | "unix"): Promise<SocketAddress> {
  if (transport === "tcp") return { transport, port: 0 };
  const path = await Deno.makeTempFile({ prefix: "deno-ipc-fuzz-", suffix: ".sock" });
  await Deno.remove(path);
  return { transport, path };
}

for (const transport of ["tcp", "unix"] as const) {
  ipcTest(
    `RPC over ${transport} under hostile frames and floods: the server stays up, its memory ` +
      `stays bounded by its limits, and a good client is served throughout`,
    async () => {
      const listenOn = await listenAddress(transport);
      try {
        await fuzzServer(listenOn);
      } finally {
        // A server killed by a failing test leaves its socket file behind.
        if (listenOn.transport === "unix") await Deno.remove(listenOn.path).catch(() => {});
      }
    },
  );
}

async function fuzzServer(listenOn: SocketAddress): Promise<void> {
  await using server = new Child(
    "socket_child.ts",
    [
      "limited-rpc-server",
      JSON.stringify(listenOn),
      JSON.stringify(LIMITS),
    ],
    ["-A", "--unstable-net", "--v8-flags=--expose-gc"],
  );
  const address = JSON.parse(await server.line()) as SocketAddress;
  const pid = server.process.pid;
  using good = await RpcClient.connect<Limited>(address, { callTimeout: 20_000 });
  const served = async () => assert.equal(await good.stub.add(20, 22), 42);
  await served();
  const externalBefore = (await good.stub.memory()).external;
  const rssBefore = vmRss(pid);
  const checkMemory = async (when: string) => {
    const external = (await good.stub.memory()).external - externalBefore;
    const rss = vmRss(pid) - rssBefore;
    assert.ok(external < EXTERNAL_BOUND, `${when}: ArrayBuffer memory grew ${external} B`);
    assert.ok(rss < RSS_BOUND, `${when}: VmRSS grew ${rss} B`);
    if (Deno.env.get("DENO_IPC_SHOW_MEMORY")) console.log(when, { external, rss });
  };

  // Hostile streams, one connection each, cut anywhere.
  await fc.assert(
    fc.asyncProperty(hostileStream, async (bytes) => {
      const raw = await rawConnect(address);
      await writeQuietly(raw, bytes);
      closeQuietly(raw);
      await served();
    }),
    { numRuns: propertyRuns(25) },
  );
  await checkMemory("after hostile streams");

  // A flood of connections, each announcing the largest frame and sending 64 KiB of it.
  const flood: Deno.Conn[] = [];
  try {
    for (let i = 0; i < LIMITS.maxConnections + 16; i++) {
      const raw = await rawConnect(address);
      flood.push(raw);
      await writeQuietly(raw, header(LIMITS.maxFrameSize));
      await writeQuietly(raw, new Uint8Array(64 * KIB));
    }
    await delay(200);
    await served();
    await checkMemory("during a flood of connections");
    // The server is full (some flood connections may have been refused while it still
    // counted hostile ones not yet closed): within maxConnections more clients, one is
    // refused with ServerBusyError.
    const late: RpcClient<Limited>[] = [];
    let refused: unknown;
    try {
      while (refused === undefined && late.length <= LIMITS.maxConnections) {
        const client = await RpcClient.connect<Limited>(address, { callTimeout: 20_000 });
        late.push(client);
        await client.stub.add(1, 1).catch((error) => refused = error);
      }
    } finally {
      for (const client of late) client.close();
    }
    assert.ok(
      refused instanceof ServerBusyError && refused.limit === "connections",
      `no client was refused with ServerBusyError: ${refused}`,
    );
  } finally {
    for (const raw of flood) closeQuietly(raw);
  }
  await delay(200);
  using after = await RpcClient.connect<Limited>(address, { callTimeout: 20_000 });
  assert.equal(await after.stub.add(1, 2), 3, "a new client is served after the flood");

  // A flood of calls on one connection whose replies are never read.
  const caller = await rawConnect(address);
  try {
    const call = frame(marshal([0, 7, "slow", [300]]));
    const calls = new Uint8Array(call.length * 20_000);
    for (let i = 0; i < 20_000; i++) calls.set(call, i * call.length);
    const writing = writeQuietly(caller, calls); // stalls once the server stops reading
    await delay(500);
    await served();
    await checkMemory("during a flood of calls");
    closeQuietly(caller);
    await writing;
  } finally {
    closeQuietly(caller);
  }
  await served();
  await checkMemory("at the end");
  server.process.kill("SIGTERM");
  assert.equal((await server.status()).code, 0, "the server did not exit cleanly");
}

for (const transport of ["tcp", "unix"] as const) {
  ipcTest(
    `an RPC server over ${transport} that runs out of file descriptors in a flood of ` +
      `connections keeps serving once they close`,
    async () => {
      const listenOn = await listenAddress(transport);
      try {
        await using server = new Child(
          "socket_child.ts",
          ["limited-rpc-server", JSON.stringify(listenOn), "{}", "96"],
          ["-A", "--unstable-net"],
        );
        const address = JSON.parse(await server.line()) as SocketAddress;
        const flood: Deno.Conn[] = [];
        try {
          for (let i = 0; i < 160; i++) flood.push(await rawConnect(address));
          await delay(300);
        } finally {
          for (const raw of flood) closeQuietly(raw);
        }
        using client = await RpcClient.connect<Limited>(address, { callTimeout: 20_000 });
        assert.equal(await client.stub.add(1, 2), 3, "the server stopped serving");
        server.process.kill("SIGTERM");
        assert.equal((await server.status()).code, 0, "the server did not exit cleanly");
      } finally {
        if (listenOn.transport === "unix") await Deno.remove(listenOn.path).catch(() => {});
      }
    },
  );
}

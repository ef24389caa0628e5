// Child process for socket and RPC tests.
//   raw-writer PORT FILE SPLITS   connects to 127.0.0.1:PORT and writes FILE's bytes in the
//                                 chunks that the JSON list SPLITS of offsets gives
//   udp-receiver COUNT            binds loopback, prints its port, prints COUNT datagrams (JSON)
//   group-receiver GROUP PORT COUNT  joins the group, prints "ready", then COUNT datagrams (JSON)
//   rpc-server ADDRESS [REGISTRY] [NAME]  serves the test procedures at ADDRESS (JSON), prints
//                                 its address (JSON); registers as NAME with REGISTRY if given
//   limited-rpc-server ADDRESS OPTIONS [NOFILE]  serves add, slow and memory at ADDRESS with
//                                 the RpcServerOptions OPTIONS (JSON), prints its address
//                                 (JSON); with NOFILE, first lowers its open-file limit to that
//   unix-client PATH              connects to the framed server at PATH, prints the peer
//                                 credentials it sees (JSON), echoes one message, exits
//   register ADDRESS NAME REGISTRY  registers ADDRESS as NAME with the matchmaker REGISTRY
//                                 (JSON) and prints "registered" or the error's name
import {
  BadArgumentsError,
  DatagramSocket,
  FramedConnection,
  type MatchmakerProcedures,
  RpcClient,
  RpcServer,
  type SocketAddress,
} from "../../mod.ts";

const [action, ...rest] = Deno.args;
const decoder = new TextDecoder();

if (action === "raw-writer") {
  const [port, file, splits] = rest;
  const bytes = await Deno.readFile(file);
  const offsets = [0, ...(JSON.parse(splits) as number[]), bytes.length];
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
  conn.setNoDelay(true);
  for (let i = 1; i < offsets.length; i++) {
    const chunk = bytes.subarray(offsets[i - 1], offsets[i]);
    for (let written = 0; written < chunk.length;) {
      written += await conn.write(chunk.subarray(written));
    }
    await new Promise((resolve) => setTimeout(resolve, 1)); // separate segments
  }
  conn.close();
} else if (action === "udp-receiver") {
  using socket = DatagramSocket.bind();
  console.log(socket.address.port);
  const texts: string[] = [];
  for (let i = 0; i < Number(rest[0]); i++) {
    texts.push(decoder.decode((await socket.receive({ timeout: 30_000 })).data));
  }
  console.log(JSON.stringify(texts));
} else if (action === "group-receiver") {
  const [group, port, count] = rest;
  using socket = await DatagramSocket.joinGroup({ group, port: Number(port) });
  console.log("ready");
  const texts: string[] = [];
  for (let i = 0; i < Number(count); i++) {
    texts.push(decoder.decode((await socket.receive({ timeout: 30_000 })).data));
  }
  console.log(JSON.stringify(texts));
} else if (action === "rpc-server") {
  const [address, registry, name] = rest;
  const server = RpcServer.listen(JSON.parse(address) as SocketAddress, {
    echo: (value: unknown) => value,
    swap: (a: unknown, b: unknown) => [b, a],
    add: (a: number, b: number) => a + b,
    slow: async (ms: number, value: unknown) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return value;
    },
    fail: (message: string) => {
      throw new RangeError(message);
    },
    positive: (n: unknown) => {
      if (typeof n !== "number" || n <= 0) {
        throw new BadArgumentsError("n must be a positive number");
      }
      return Math.sqrt(n);
    },
    pid: () => Deno.pid,
  });
  if (registry) await server.registerWith(JSON.parse(registry) as SocketAddress, name);
  console.log(JSON.stringify(server.address));
  Deno.addSignalListener("SIGTERM", async () => {
    await server.close();
    Deno.exit(0);
  });
} else if (action === "limited-rpc-server") {
  const [address, options, nofile] = rest;
  if (nofile !== undefined) {
    // setrlimit(RLIMIT_NOFILE, { soft, hard }): struct rlimit is two 64-bit counts.
    const RLIMIT_NOFILE = 7;
    const limit = new BigUint64Array([BigInt(nofile), BigInt(nofile)]);
    const c = Deno.dlopen("libc.so.6", {
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
    if (c.symbols.setrlimit(RLIMIT_NOFILE, new Uint8Array(limit.buffer)) !== 0) {
      throw new Error("setrlimit failed");
    }
    c.close();
  }
  const server = RpcServer.listen(JSON.parse(address) as SocketAddress, {
    add: (a: number, b: number) => a + b,
    slow: async (ms: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return ms;
    },
    memory: () => {
      (globalThis as { gc?: () => void }).gc?.();
      return Deno.memoryUsage();
    },
  }, JSON.parse(options));
  console.log(JSON.stringify(server.address));
  Deno.addSignalListener("SIGTERM", async () => {
    await server.close();
    Deno.exit(0);
  });
} else if (action === "unix-client") {
  using connection = await FramedConnection.connect({ transport: "unix", path: rest[0] }, {
    timeout: 10_000,
  });
  console.log(JSON.stringify(connection.peerCredentials));
  const message = await connection.receive({ timeout: 10_000 });
  await connection.send(message!);
  await connection.closeWrite();
} else if (action === "register") {
  const [address, name, registry] = rest;
  using client = await RpcClient.connect<MatchmakerProcedures>(JSON.parse(registry), {
    callTimeout: 10_000,
  });
  try {
    await client.stub.register(name, JSON.parse(address) as SocketAddress);
    console.log("registered");
  } catch (error) {
    console.log((error as { remoteName?: string }).remoteName ?? (error as Error).name);
  }
} else {
  throw new Error(`unknown action ${action}`);
}

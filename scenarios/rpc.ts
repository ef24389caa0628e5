// Remote procedure calls: a matchmaker (registry) process at a well-known Unix socket;
// a server process exposing a few procedures registers there as "calculator"; two client
// processes look the name up, get the server's address, and call through a typed stub.
// The trace shows each request and reply as marshalled MessagePack bytes and as values.
//
//   deno run -A --unstable-net scenarios/rpc.ts
import { marshal, Matchmaker, RpcClient, RpcServer, type SocketAddress } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();

const calculator = {
  add: (a: number, b: number) => a + b,
  divide: (a: number, b: number) => {
    if (b === 0) throw new RangeError("division by zero");
    return a / b;
  },
  checksum: (bytes: Uint8Array) => bytes.reduce((sum, byte) => (sum + byte) & 0xffff, 0),
};

function hex(bytes: Uint8Array): string {
  const shown = Array.from(bytes.subarray(0, 16), (b) => b.toString(16).padStart(2, "0"));
  return shown.join(" ") + (bytes.length > 16 ? " ..." : "");
}

function show(value: unknown): string {
  return JSON.stringify(value, (_, v) => v instanceof Uint8Array ? `<${v.length} bytes>` : v);
}

async function waitForFile(path: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  throw new Error(`${path} did not appear`);
}

const registry: SocketAddress = { transport: "unix", path: values.registry };

if (role === "matchmaker") {
  await using matchmaker = Matchmaker.listen(registry);
  trace("matchmaker", `listening on ${values.registry}`);
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  const left = [...matchmaker.services.keys()];
  trace("matchmaker", `stopping; still registered: ${left.length ? left.join(", ") : "none"}`);
} else if (role === "server") {
  await waitForFile(values.registry);
  await using server = RpcServer.listen({ transport: "tcp", port: 0 }, calculator, {
    onFrame: (direction, message, bytes) =>
      trace("server", `${direction === "request" ? "<-" : "->"} ${bytes} bytes ${show(message)}`),
  });
  await server.registerWith(registry, "calculator");
  traceEvent("server", "send", {
    peer: "matchmaker",
    label: `register "calculator"`,
    text: `registered "calculator" at ${show(server.address)}`,
  });
  await Deno.writeTextFile(values.ready, "ready");
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
} else if (role === "client") {
  const who = `client ${values.index}`;
  using client = await RpcClient.connectByName<typeof calculator>("calculator", {
    registry,
    callTimeout: 10_000,
  });
  traceEvent(who, "send", {
    peer: "matchmaker",
    label: `look up "calculator"`,
    text: `found "calculator" through the matchmaker`,
  });
  traceEvent(who, "receive", { peer: "matchmaker", label: "the server's address" });
  const a = Number(values.index) * 10;
  const request = [0, 1, "add", [a, 5]];
  trace(who, `add(${a}, 5): request marshalled as ${hex(marshal(request))}`);
  traceEvent(who, "send", { peer: "server", label: `call add(${a}, 5)` });
  const sum = await client.stub.add(a, 5);
  traceEvent(who, "receive", { peer: "server", label: `= ${sum}`, text: `add(${a}, 5) = ${sum}` });
  traceEvent(who, "send", { peer: "server", label: "call checksum(<1000 bytes>)" });
  const checksum = await client.stub.checksum(new Uint8Array(1000).fill(7));
  traceEvent(who, "receive", {
    peer: "server",
    label: `= ${checksum}`,
    text: `checksum(<1000 bytes>) = ${checksum}`,
  });
  traceEvent(who, "send", { peer: "server", label: `call divide(${a}, 0)` });
  try {
    await client.stub.divide(a, 0);
  } catch (error) {
    traceEvent(who, "receive", {
      peer: "server",
      label: `error: ${(error as Error).message}`,
      text: `divide(${a}, 0) threw ${(error as Error).name}: remote ${
        show((error as { remoteName: string }).remoteName)
      }, "${(error as Error).message}"`,
    });
  }
} else {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-rpc-" });
  const path = `${directory}/matchmaker.sock`;
  const ready = `${directory}/server-ready`;
  const matchmaker = spawnRole(import.meta.url, "matchmaker", { registry: path });
  const server = spawnRole(import.meta.url, "server", { registry: path, ready });
  try {
    await waitForFile(ready);
    for (const index of [1, 2]) {
      const status = await spawnRole(import.meta.url, "client", { registry: path, index }).status;
      if (status.code !== 0) throw new Error(`client ${index} failed`);
    }
  } finally {
    server.kill("SIGTERM");
    await server.status;
    matchmaker.kill("SIGTERM");
    await matchmaker.status;
    await Deno.remove(directory, { recursive: true });
  }
  trace("main", "server and matchmaker stopped");
}

// Sockets: an echo server process listening on TCP (loopback) and on a Unix domain
// socket at once; client processes connect over each, send framed messages (a 4-byte
// length, then the bytes) and print the echoes. Messages arrive whole however the byte
// stream is split.
//
//   deno run -A --unstable-net scenarios/socket_echo.ts
import { FramedConnection, FramedServer, type SocketAddress } from "../mod.ts";
import { runRole, scenarioArgs, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const decoder = new TextDecoder();

if (role === "server") {
  using tcp = FramedServer.listen({ transport: "tcp", port: 0 });
  using unix = FramedServer.listen({ transport: "unix", path: values.path });
  const echo = async (connection: FramedConnection, via: string) => {
    for await (const message of connection) {
      const text = decoder.decode(message);
      traceEvent("server", "receive", {
        object: `${via} socket`,
        label: text,
        text: `${via}: echo ${message.length}-byte frame "${text}"`,
      });
      await connection.send(message);
      traceEvent("server", "send", { object: `${via} socket`, label: `echo: ${text}` });
    }
    trace("server", `${via}: client closed its side`);
  };
  console.log(JSON.stringify(tcp.address)); // the parent reads the TCP port from here
  const clients = Number(values.clients);
  await Promise.all([
    ...Array.from(
      { length: clients },
      async () => echo(await tcp.accept({ timeout: 10_000 }), "tcp"),
    ),
    ...Array.from(
      { length: clients },
      async () => echo(await unix.accept({ timeout: 10_000 }), "unix"),
    ),
  ]);
} else if (role === "client") {
  const address = JSON.parse(values.address) as SocketAddress;
  using connection = await FramedConnection.connect(address, { timeout: 10_000 });
  const me = `client ${values.index}`;
  const socket = `${address.transport} socket`;
  for (const word of [`hello ${values.index}`, `from client ${values.index}`]) {
    await connection.send(word);
    traceEvent(me, "send", { object: socket, label: word });
    const echoed = decoder.decode((await connection.receive({ timeout: 10_000 }))!);
    traceEvent(me, "receive", {
      object: socket,
      label: `echo: ${echoed}`,
      text: `${address.transport}: sent "${word}", got "${echoed}"`,
    });
  }
  await connection.closeWrite();
} else {
  const path = await Deno.makeTempFile({ prefix: "deno-ipc-echo-", suffix: ".sock" });
  await Deno.remove(path);
  const clients = 2;
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      new URL(import.meta.url).pathname,
      "--role=server",
      `--path=${path}`,
      `--clients=${clients}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
  let buffered = "";
  while (!buffered.includes("\n")) buffered += (await lines.next()).value ?? "";
  const tcpAddress = buffered.slice(0, buffered.indexOf("\n"));
  trace("main", `server listening on tcp ${tcpAddress} and unix ${path}`);
  const forward = (async () => {
    Deno.stdout.writeSync(new TextEncoder().encode(buffered.slice(buffered.indexOf("\n") + 1)));
    for (let chunk = await lines.next(); !chunk.done; chunk = await lines.next()) {
      Deno.stdout.writeSync(new TextEncoder().encode(chunk.value));
    }
  })();
  try {
    await Promise.all([
      ...Array.from(
        { length: clients },
        (_, i) => runRole(import.meta.url, "client", { address: tcpAddress, index: i + 1 }),
      ),
      ...Array.from({ length: clients }, (_, i) =>
        runRole(import.meta.url, "client", {
          address: JSON.stringify({ transport: "unix", path }),
          index: clients + i + 1,
        })),
    ]);
    if ((await server.status).code !== 0) throw new Error("server failed");
    await forward;
  } finally {
    try {
      Deno.removeSync(path);
    } catch { /* the server removed it */ }
  }
  trace("main", "all clients served; the Unix socket file is gone");
}

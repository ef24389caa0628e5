// Named pipes (FIFOs) between unrelated processes. A server reads requests from a
// well-known FIFO; three client processes (started separately, not by the server) each
// create their own reply FIFO, send one request line, and read the reply from it.
// Requests are shorter than PIPE_BUF, so concurrent clients never interleave.
//
//   deno run -A --unstable-net scenarios/fifo_client_server.ts
import { Fifo } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const CLIENTS = 3;
const { role, values } = scenarioArgs();
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SERVER_FIFO = "server.fifo";

if (role === "server") {
  const path = values.fifo;
  // Also hold a write end ourselves, so the read end does not see EOF between clients.
  const [requests, keepOpen] = await Promise.all([
    Fifo.openReader(path, { timeout: 10_000 }),
    Fifo.openWriter(path, { timeout: 10_000 }),
  ]);
  using _requests = requests;
  using _keepOpen = keepOpen;
  trace("server", `listening on ${path}`);
  let pending = "";
  let served = 0;
  const buffer = new Uint8Array(4096);
  while (served < CLIENTS) {
    const n = await requests.read(buffer, { timeout: 10_000 });
    if (n === null) break;
    pending += decoder.decode(buffer.subarray(0, n), { stream: true });
    for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
      const [client, replyPath, ...words] = pending.slice(0, end).split(" ");
      pending = pending.slice(end + 1);
      const text = words.join(" ");
      traceEvent("server", "receive", {
        object: SERVER_FIFO,
        label: text,
        text: `request from ${client}: "${text}"`,
      });
      using reply = await Fifo.openWriter(replyPath, { timeout: 10_000 });
      const answer = `${text.toUpperCase()} (served by ${Deno.pid})`;
      await reply.write(encoder.encode(answer));
      traceEvent("server", "send", { object: replyPath.split("/").pop()!, label: answer });
      served++;
    }
  }
  trace("server", `served ${served} clients; exiting`);
} else if (role === "client") {
  const replyPath = `${values.dir}/reply-${Deno.pid}.fifo`;
  const me = `client ${values.index}`;
  const replyFifo = replyPath.split("/").pop()!;
  Fifo.create(replyPath);
  traceEvent(me, "create", { object: replyFifo, label: "mkfifo" });
  try {
    using server = await Fifo.openWriter(values.fifo, { timeout: 10_000 });
    const request = `client-${values.index} ${replyPath} hello from client ${values.index}\n`;
    await server.write(encoder.encode(request));
    traceEvent(me, "send", {
      object: SERVER_FIFO,
      label: `hello from client ${values.index}`,
      text: `sent a request; waiting on ${replyFifo}`,
    });
    using reply = await Fifo.openReader(replyPath, { timeout: 10_000 });
    let text = "";
    for await (const chunk of reply.readable()) text += decoder.decode(chunk);
    traceEvent(me, "receive", { object: replyFifo, label: text, text: `reply: "${text}"` });
  } finally {
    Fifo.unlink(replyPath);
    traceEvent(me, "unlink", { object: replyFifo });
  }
} else {
  const dir = Deno.makeTempDirSync({ prefix: "deno-ipc-fifo-" });
  const fifo = `${dir}/server.fifo`;
  try {
    Fifo.create(fifo);
    traceEvent("main", "create", {
      object: SERVER_FIFO,
      label: "mkfifo",
      text: `mkfifo ${fifo} (mode 0600)`,
    });
    const server = spawnRole(import.meta.url, "server", { fifo });
    const clients = Array.from(
      { length: CLIENTS },
      (_, index) => spawnRole(import.meta.url, "client", { fifo, dir, index: index + 1 }),
    );
    const statuses = await Promise.all([server, ...clients].map((process) => process.status));
    if (statuses.some((status) => status.code !== 0)) throw new Error("a process failed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
    traceEvent("main", "unlink", { object: SERVER_FIFO });
  }
}

// Mach message passing: a server checks in "echo" with the bootstrap server (a per-user
// process started on demand) and gets the port's receive right; clients look "echo" up
// and get send rights; each request carries a send-once reply right. One client sends a
// 1 MiB region out of line (a sealed memfd the server maps: nothing is copied). Another
// fills the server's queue of 5 and tries the four full-queue options. Then the server
// is killed: the clients' send rights become dead names and a dead-name notification
// arrives. Every line says who holds which right and what moved.
//
//   deno run -A --unstable-net scenarios/mach_ports.ts
import {
  Bootstrap,
  MACH_NOTIFY,
  NotifyInProgressError,
  OutOfLineMemory,
  PortSet,
  QueueFullError,
  ReceiveRight,
  SendRight,
} from "../mod.ts";
import { runRole, scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PAUSE = 900;
const RESUME = 901;
const OOL = 902;

async function lookUpWhenReady(bootstrap: Bootstrap, name: string): Promise<SendRight> {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    try {
      return await bootstrap.lookUp(name);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  throw new Error(`${name} never checked in`);
}

function connect(): Promise<Bootstrap> {
  return Bootstrap.connect({ directory: values.bootstrap, idleMs: 300 });
}

// Who sent request `id` (for the diagram's reply arrows).
function replyTo(id: number): string {
  if (id === OOL) return "ool";
  if (id >= 100 || id === PAUSE) return "filler";
  return `client ${id}`;
}

if (role === "server") {
  const bootstrap = await connect();
  using echo = await bootstrap.checkIn("echo");
  using control = await bootstrap.checkIn("echo.control");
  bootstrap.close();
  traceEvent("server", "receive", {
    object: "bootstrap server",
    label: "RECEIVE rights: echo, echo.control",
    text: `checked in "echo" (queue limit ${echo.queueLimit}) and "echo.control":`,
  });
  trace(
    "server",
    `  this process holds their RECEIVE rights; the bootstrap server keeps SEND rights`,
  );
  using both = PortSet.allocate({ label: "server set" });
  both.add(echo);
  both.add(control);
  let paused = false;
  while (true) {
    const { port, message } = paused
      ? { port: control, message: await control.receive() }
      : await both.receive();
    using _ = message;
    const from = `pid ${message.sender?.pid}`;
    if (message.id === PAUSE) {
      paused = true;
      traceEvent("server", "receive", {
        object: "echo port",
        label: "PAUSE",
        text: `<- PAUSE from ${from}: receiving on "echo.control" only now`,
      });
    } else if (message.id === RESUME) {
      paused = false;
      traceEvent("server", "receive", {
        object: "echo.control port",
        label: "RESUME",
        text: `<- RESUME from ${from}: ${echo.queued} messages wait in "echo"`,
      });
    } else if (message.id === OOL) {
      const region = message.memory[0];
      const sum = region.bytes.reduce((total, byte) => total + byte, 0);
      traceEvent("server", "receive", {
        object: "echo port",
        label: `${region.size / 2 ** 20} MiB out of line`,
        text: `<- ${region.size} bytes out of line from ${from}: mapped copy-on-write into ` +
          `this process, byte sum ${sum}; unmapping it when done`,
      });
    } else {
      traceEvent("server", "receive", {
        object: `${port.label} port`,
        label: `request ${message.id}`,
        text: `<- request ${message.id} on "${port.label}" from ${from} (kernel's word), ` +
          `"${decoder.decode(message.body)}", reply right: ${message.reply ? "SEND-ONCE" : "none"}`,
      });
    }
    if (message.reply) {
      await message.reply.send({ id: message.id + 1000, body: message.body });
      traceEvent("server", "send", {
        object: `${replyTo(message.id)} reply port`,
        label: `reply ${message.id + 1000}`,
        text: `-> reply ${message.id + 1000} through the send-once right (now used up)`,
      });
    }
  }
} else if (role === "client") {
  const who = `client ${values.index}`;
  using bootstrap = await connect();
  using echo = await bootstrap.lookUp("echo");
  traceEvent(who, "receive", {
    object: "bootstrap server",
    label: `SEND right to "echo"`,
    text: `looked up "echo": holds a SEND right to it`,
  });
  using replies = ReceiveRight.allocate({ label: `${who} replies` });
  const text = `hello from ${who}`;
  await echo.send({
    id: Number(values.index),
    body: encoder.encode(text),
    reply: { makeSendOnce: replies },
  });
  traceEvent(who, "send", {
    object: "echo port",
    label: `request ${values.index}`,
    text: `-> request ${values.index} with a SEND-ONCE right made from its reply port`,
  });
  using reply = await replies.receive({ timeout: 10_000 });
  traceEvent(who, "receive", {
    object: `${who} reply port`,
    label: `reply ${reply.id}`,
    text: `<- reply ${reply.id} "${decoder.decode(reply.body)}" from pid ${reply.sender?.pid}`,
  });
} else if (role === "ool") {
  using bootstrap = await connect();
  using echo = await bootstrap.lookUp("echo");
  using replies = ReceiveRight.allocate({ label: "ool replies" });
  const region = OutOfLineMemory.allocate(2 ** 20);
  region.bytes.fill(3);
  trace("ool", `filled a 1 MiB region (a memfd); sending it out of line`);
  await echo.send({ id: OOL, memory: [region], reply: { makeSendOnce: replies } });
  traceEvent("ool", "send", {
    object: "echo port",
    label: "1 MiB out of line",
    text: `-> sent: the region was sealed and moved (closed here: ${region.closed})`,
  });
  (await replies.receive({ timeout: 10_000 }))[Symbol.dispose]();
  trace("ool", `<- reply: the server has seen all 1 MiB`);
} else if (role === "filler") {
  using bootstrap = await connect();
  using echo = await bootstrap.lookUp("echo");
  using control = await bootstrap.lookUp("echo.control");
  using mine = ReceiveRight.allocate({ label: "filler notify" });
  using notify = mine.makeSend();
  await echo.send({ id: PAUSE, reply: { makeSendOnce: mine } });
  (await mine.receive({ timeout: 10_000 }))[Symbol.dispose]();
  for (let i = 1; i <= 5; i++) await echo.send({ id: 100 + i, body: encoder.encode(`fill ${i}`) });
  traceEvent("filler", "summary", {
    object: "echo port",
    label: "fill i",
    count: 5,
    text: `filled "echo": 5 of 5 queued; the server is not receiving`,
  });
  try {
    await echo.send({ id: 106 }, { timeout: 0 });
  } catch (error) {
    if (!(error instanceof QueueFullError)) throw error;
    trace("filler", `option 3, timeout 0: ${error.name} at once (MACH_SEND_TIMED_OUT)`);
  }
  const started = performance.now();
  try {
    await echo.send({ id: 106 }, { timeout: 200 });
  } catch (error) {
    if (!(error instanceof QueueFullError)) throw error;
    const waited = Math.round(performance.now() - started);
    trace("filler", `option 2, timeout 200 ms: ${error.name} after ${waited} ms`);
  }
  const cached = await echo.send({ id: 107, body: encoder.encode("cached") }, { notify });
  trace("filler", `option 4, cached send: "${cached}": queued beyond the limit`);
  try {
    await echo.send({ id: 108 }, { notify });
  } catch (error) {
    if (!(error instanceof NotifyInProgressError)) throw error;
    trace("filler", `          a second cached send: ${error.name} (notify in progress)`);
  }
  traceEvent("filler", "block", {
    object: "echo port",
    label: "queue full: waiting",
    text: `option 1, no timeout: waiting for room...`,
  });
  const waiting = echo.send({ id: 109, body: encoder.encode("waited") });
  await control.send({ id: RESUME });
  await waiting;
  traceEvent("filler", "wake", {
    object: "echo port",
    label: "room: sent",
    text: `option 1: sent once the server took a message`,
  });
  using accepted = await mine.receive({ timeout: 10_000 });
  if (accepted.id !== MACH_NOTIFY.MSG_ACCEPTED) throw new Error(`unexpected ${accepted.id}`);
  traceEvent("filler", "receive", {
    object: "filler notify port",
    label: "msg-accepted notification",
    text: `<- msg-accepted notification: the cached message is in the queue now`,
  });
} else if (role === "watcher") {
  using bootstrap = await connect();
  using echo = await bootstrap.lookUp("echo");
  using notifications = ReceiveRight.allocate({ label: "watcher notify" });
  echo.requestDeadName(notifications);
  using toMain = SendRight.fromInherited(values.token);
  trace("watcher", `holds a SEND right to "echo" and asked for a dead-name notification`);
  await toMain.send({ id: 1 });
  using notification = await notifications.receive({ timeout: 20_000 });
  traceEvent("watcher", "receive", {
    object: "watcher notify port",
    label: `${notification.notification} notification`,
    text: `<- ${notification.notification} notification: "echo" died`,
  });
  try {
    await echo.send({ id: 1 });
  } catch (error) {
    trace("watcher", `sending on the dead name: ${(error as Error).name}`);
  }
  try {
    await bootstrap.lookUp("echo");
  } catch (error) {
    trace("watcher", `look-up: ${(error as Error).message}`);
  }
} else {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-mach-demo-" });
  let serverPid = 0;
  try {
    const bootstrap = await Bootstrap.connect({ directory, idleMs: 300 });
    serverPid = bootstrap.serverPid;
    trace("main", `bootstrap server started on demand: pid ${serverPid}, socket in ${directory}`);
    const server = spawnRole(import.meta.url, "server", { bootstrap: directory });
    try {
      (await lookUpWhenReady(bootstrap, "echo")).close();
      await Promise.all(
        [1, 2].map((index) => runRole(import.meta.url, "client", { bootstrap: directory, index })),
      );
      await runRole(import.meta.url, "ool", { bootstrap: directory });
      await runRole(import.meta.url, "filler", { bootstrap: directory });
      using ready = ReceiveRight.allocate({ label: "main" });
      using toMain = ready.makeSend();
      const token = toMain.inheritable();
      const watcher = spawnRole(import.meta.url, "watcher", {
        bootstrap: directory,
        token: token.token,
      });
      token[Symbol.dispose]();
      (await ready.receive({ timeout: 20_000 }))[Symbol.dispose]();
      traceEvent("main", "signal", {
        peer: "server",
        label: "SIGKILL",
        text: `killing the server (SIGKILL): its RECEIVE rights die with it`,
      });
      server.kill("SIGKILL");
      await server.status;
      if ((await watcher.status).code !== 0) throw new Error("watcher failed");
    } finally {
      try {
        server.kill("SIGKILL");
      } catch { /* already gone */ }
      await server.status;
      bootstrap.close();
    }
  } finally {
    // The bootstrap server exits once idle; then its directory goes.
    for (let i = 0; i < 400 && serverPid !== 0; i++) {
      try {
        await Deno.stat(`/proc/${serverPid}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      } catch {
        break;
      }
    }
    await Deno.remove(directory, { recursive: true });
  }
  trace("main", "bootstrap server gone, directory removed");
}

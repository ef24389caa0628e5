// Message queues. Part 1, System V: a server and three client processes share one queue.
// Requests go as type 1; each reply is addressed with type = the client's pid, so every
// client receives only its own reply. Part 2, POSIX: a sender process sends messages of
// priority low, high, mid; a receiver process gets them high, mid, low.
//
//   deno run -A --unstable-net scenarios/message_queue.ts
import { MessageQueue, PosixMessageQueue } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const CLIENTS = 3;
const REQUEST = 1;
const { role, values } = scenarioArgs();
const SYSV = "System V queue";
const POSIX = "POSIX queue";

if (role === "server") {
  using queue = MessageQueue.fromId(Number(values.queue));
  for (let served = 0; served < CLIENTS; served++) {
    const request = await queue.receive({ type: REQUEST, timeout: 10_000 });
    const { pid, text } = request.json<{ pid: number; text: string }>();
    traceEvent("server", "receive", {
      object: SYSV,
      label: `type ${REQUEST}: ${text}`,
      text: `msgrcv(type ${REQUEST}): "${text}" from pid ${pid}; replying as type ${pid}`,
    });
    await queue.sendJson(pid, { answer: text.toUpperCase() });
    traceEvent("server", "send", { object: SYSV, label: `type ${pid}: ${text.toUpperCase()}` });
  }
} else if (role === "client") {
  using queue = MessageQueue.fromId(Number(values.queue));
  const text = `request from client ${values.index}`;
  const me = `client ${values.index}`;
  await queue.sendJson(REQUEST, { pid: Deno.pid, text });
  traceEvent(me, "send", {
    object: SYSV,
    label: `type ${REQUEST}: ${text}`,
    text: `msgsnd(type ${REQUEST}): "${text}"`,
  });
  const reply = await queue.receive({ type: Deno.pid, timeout: 10_000 });
  traceEvent(me, "receive", {
    object: SYSV,
    label: `type ${Deno.pid}: ${reply.json<{ answer: string }>().answer}`,
    text: `msgrcv(type ${Deno.pid}): ${reply.text()}`,
  });
} else if (role === "sender") {
  using queue = PosixMessageQueue.open({ name: values.name });
  for (const [text, priority] of [["low", 1], ["high", 30], ["mid", 15]] as const) {
    queue.trySend(text, { priority });
    traceEvent("sender", "send", {
      object: POSIX,
      label: `${text} (priority ${priority})`,
      text: `mq_send("${text}", priority ${priority})`,
    });
  }
} else if (role === "receiver") {
  using queue = PosixMessageQueue.open({ name: values.name });
  for (let message = queue.tryReceive(); message; message = queue.tryReceive()) {
    traceEvent("receiver", "receive", {
      object: POSIX,
      label: `${message.text()} (priority ${message.type})`,
      text: `mq_receive: "${message.text()}" (priority ${message.type})`,
    });
  }
} else {
  using queue = MessageQueue.create(); // IPC_PRIVATE: the id is passed to the others
  traceEvent("main", "create", { object: SYSV, label: `msgget(IPC_PRIVATE) = ${queue.id}` });
  try {
    trace("main", `part 1: System V queue id ${queue.id}, one server, ${CLIENTS} clients`);
    const processes = [
      spawnRole(import.meta.url, "server", { queue: queue.id }),
      ...Array.from(
        { length: CLIENTS },
        (_, i) => spawnRole(import.meta.url, "client", { queue: queue.id, index: i + 1 }),
      ),
    ];
    const statuses = await Promise.all(processes.map((process) => process.status));
    if (statuses.some((status) => status.code !== 0)) throw new Error("a process failed");
    const stats = queue.stats();
    trace(
      "main",
      `queue empty again: ${stats.messages} messages, last receiver pid ${stats.lastReceivePid}`,
    );
  } finally {
    queue.remove();
    traceEvent("main", "unlink", { object: SYSV, label: "msgctl(IPC_RMID)" });
  }

  using posix = PosixMessageQueue.create();
  traceEvent("main", "create", { object: POSIX, label: "mq_open(O_CREAT | O_EXCL)" });
  try {
    trace("main", `part 2: POSIX queue ${posix.name}: priorities`);
    for (const step of ["sender", "receiver"]) {
      const status = await spawnRole(import.meta.url, step, { name: posix.name }).status;
      if (status.code !== 0) throw new Error(`${step} failed`);
    }
  } finally {
    posix.unlink();
    traceEvent("main", "unlink", { object: POSIX, label: "mq_unlink" });
  }
}

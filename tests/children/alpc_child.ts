// Roles for tests/alpc_test.ts, each a separate process:
//   server NAME REPLY_SECTION  echo server; "hold" requests are never answered; "nest:N"
//                              calls back N levels; prints each event as a JSON line
//   client NAME SECTION        connects, prints {"pid"}, sends one "hold" request, waits
//   intruder NAME VICTIM_PID   tries to reach the victim's channel; prints what happened
//   stuck-sender NAME          connects and sends 256 B datagrams until one has waited
//                              500 ms for room (the server reads nothing); prints
//                              {"stuck", "parked"} (a thread in poll), closes, awaits
//                              released, prints {"released", "pendingAfterClose"}
//   changer NAME               connects (as root), then changes its user ids to 65534
//                              and sends a request too large for any section; prints
//                              {"outcome"}: the reply's length or the error's name and text
import { AlpcClient, AlpcServer } from "../../mod.ts";

const [role, name, extra] = Deno.args;
const print = (value: unknown) => console.log(JSON.stringify(value));

if (role === "server") {
  using server = AlpcServer.create(name, { replySectionSize: Number(extra) });
  print({ ready: true, pid: Deno.pid });
  for await (const event of server) {
    if (event.type === "connect") {
      const text = new TextDecoder().decode(event.request.payload);
      if (text === "reject me") await event.request.reject("not on the list");
      else await event.request.accept({ context: text, payload: `hello ${text}` });
      continue;
    }
    if (event.type !== "request" && event.type !== "datagram") {
      print({ event: event.type, pid: event.connection.credentials.pid });
      continue;
    }
    const { message } = event;
    if (message.kind === "datagram") {
      print({ datagram: message.text(), path: message.path });
      message.release();
      continue;
    }
    const head = message.data.length < 32 ? message.text() : "";
    if (head === "hold") continue;
    if (head === "bye") {
      event.connection.close();
      continue;
    }
    if (head.startsWith("slow:")) {
      setTimeout(() => message.reply(head).catch(() => {}), Number(head.slice(5)));
      continue;
    }
    if (head.startsWith("nest:")) {
      (async () => {
        let depth = Number(head.slice(5));
        let reply = "";
        if (depth > 0) {
          const answer = await message.callback(`nest:${depth - 1}`, {
            onCallback: async (inner) => {
              const d = Number(inner.text().slice(5));
              depth = d;
              if (d <= 0) return "bottom";
              const deeper = await inner.callback(`nest:${d - 1}`);
              return `s${deeper.text()}`;
            },
          });
          reply = answer.text();
        }
        await message.reply(`done:${reply}`);
      })().catch((error) => message.fail(error));
      continue;
    }
    // Echo, reversed so that a reply is never the request's own bytes by accident.
    const copy = message.data.slice().reverse();
    const path = message.path;
    await message.reply(copy);
    if (message.data.length > 0 && path === "section") print({ never: true });
  }
} else if (role === "client") {
  using client = await AlpcClient.connect(name, { sectionSize: Number(extra), timeout: 5000 });
  print({ pid: Deno.pid });
  await client.sendWaitReceive("hold");
} else if (role === "intruder") {
  const victim = Number(extra);
  const results: Record<string, string> = {};
  // Open every socket of the victim through /proc: the kernel refuses (ENXIO).
  for (const entry of Deno.readDirSync(`/proc/${victim}/fd`)) {
    let target = "";
    try {
      target = Deno.readLinkSync(`/proc/${victim}/fd/${entry.name}`);
    } catch {
      continue;
    }
    if (!target.startsWith("socket:")) continue;
    try {
      const file = Deno.openSync(`/proc/${victim}/fd/${entry.name}`, { read: true, write: true });
      file.close();
      results[entry.name] = "opened";
    } catch (error) {
      results[entry.name] = (error as Error).name;
    }
  }
  // Connect to the named port and write a forged reply frame (the victim's first request
  // id) as raw bytes: the server takes it for a malformed connection request and drops it.
  const forged = new Uint8Array(4 + 32 + 4);
  new DataView(forged.buffer).setUint32(0, 36);
  forged.set([2, 0, 0, 0, 1, 0, 0, 0], 4); // kind reply, inline, id 1
  let forgery = "";
  try {
    const raw = await Deno.connect({ transport: "unix", path: `/tmp/deno-ipc-alpc.${name}` });
    await raw.write(forged);
    const answer = await raw.read(new Uint8Array(64));
    forgery = answer === null ? "dropped" : `answered ${answer} bytes`;
    raw.close();
  } catch (error) {
    forgery = (error as Error).name;
  }
  print({ results, forgery });
}

if (role === "stuck-sender") {
  const client = await AlpcClient.connect(name, { timeout: 5000 });
  const datagram = new Uint8Array(256); // inline: no in-place wait for the reader
  let sent = 0;
  while (true) {
    const sending = client.send(datagram);
    sending.catch(() => {});
    const settled = await Promise.race([
      sending.then(() => true, () => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 500)),
    ]);
    if (!settled) break;
    sent++;
  }
  // Parked: a thread of this process sits in poll(2) (syscall 7 on x86_64); Deno's own
  // threads wait in epoll and futexes.
  let parked = false;
  for (let tries = 0; tries < 100 && !parked; tries++) {
    parked = Array.from(Deno.readDirSync("/proc/self/task")).some((task) => {
      try {
        return Deno.readTextFileSync(`/proc/self/task/${task.name}/syscall`).startsWith("7 ");
      } catch {
        return false;
      }
    });
    if (!parked) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  print({ stuck: sent, parked });
  client.close();
  // The park's return comes back through the event loop: right after close, released
  // must still be pending, however promptly the shutdown woke the poll.
  let settled = false;
  const released = client.released.then(() => settled = true);
  for (let turn = 0; turn < 10; turn++) await Promise.resolve();
  const pendingAfterClose = !settled;
  await released;
  print({ released: true, pendingAfterClose });
}

if (role === "changer") {
  using client = await AlpcClient.connect(name, { timeout: 5000 });
  const libc = Deno.dlopen("libc.so.6", {
    setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  });
  if (libc.symbols.setresuid(65534, 65534, 65534) !== 0) throw new Error("setresuid failed");
  try {
    using reply = await client.sendWaitReceive(new Uint8Array(100_000), { timeout: 10_000 });
    print({ outcome: `reply of ${reply.data.length} bytes` });
  } catch (error) {
    print({ outcome: `${(error as Error).name}: ${(error as Error).message}` });
  }
  libc.close();
}

// A crashed process and what it leaves behind. P1 creates a ring, a mailbox and a scratch
// mailbox only it uses; P2 sends on the ring, P3 receives from it, and both then wait on
// the mailbox. P1 is killed (SIGKILL): `ipc list` shows it as a dead participant of the
// ring and mailbox, which live processes still use, so `ipc clean` removes only the
// scratch mailbox. Once P2 and P3 are done, the ring and mailbox belong only to the dead
// and the next `ipc clean` removes them too.
//
//   deno run -A --unstable-net scenarios/crash_and_clean.ts
import { inspectObject, listObjects, Mailbox, MessageRing, SharedMemory } from "../mod.ts";
import { runRole, scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const TIMEOUT = { timeout: 10_000 };
const names = (prefix: string) => ({
  ring: `${prefix}-ring`,
  mailbox: `${prefix}-mailbox`,
  scratch: `${prefix}-scratch`,
});

if (role === "P1") {
  const { ring, mailbox, scratch } = names(values.prefix);
  const r = MessageRing.create({ name: ring, capacity: 4096 });
  Mailbox.create({ name: mailbox, capacity: 4 });
  const s = Mailbox.create({ name: scratch, capacity: 4 });
  for (const object of ["ring", "mailbox", "scratch mailbox"]) {
    traceEvent("P1", "create", { object });
  }
  await s.send("notes to self");
  traceEvent("P1", "send", { object: "scratch mailbox", label: "notes to self" });
  await r.send(new TextEncoder().encode("hello from P1"));
  traceEvent("P1", "send", { object: "ring", label: "hello from P1" });
  trace("P1", `created ${ring}, ${mailbox} and ${scratch}; sent "hello from P1"`);
  setInterval(() => {}, 1 << 30); // works on until it is killed
} else if (role === "P2") {
  const { ring, mailbox } = names(values.prefix);
  using r = MessageRing.open({ name: ring });
  for (let i = 1; i <= 3; i++) {
    await r.send(new TextEncoder().encode(`job ${i}`), TIMEOUT);
    traceEvent("P2", "send", { object: "ring", label: `job ${i}` });
  }
  trace("P2", "sent job 1..3 on the ring; waiting on the mailbox");
  using m = Mailbox.open({ name: mailbox, senderName: "P2" });
  traceEvent("P2", "block", { object: "mailbox", label: "mailbox empty: waiting" });
  const text = (await m.receive(TIMEOUT)).text();
  traceEvent("P2", "receive", { object: "mailbox", label: text, text: `mailbox -> "${text}"` });
} else if (role === "P3") {
  const { ring, mailbox } = names(values.prefix);
  using r = MessageRing.open({ name: ring });
  const received: string[] = [];
  for (let i = 0; i < 4; i++) {
    const message = await r.receive(TIMEOUT);
    received.push(new TextDecoder().decode(message!));
    traceEvent("P3", "receive", { object: "ring", label: received.at(-1) });
  }
  trace("P3", `ring -> ${received.map((text) => `"${text}"`).join(", ")}; waiting on the mailbox`);
  using m = Mailbox.open({ name: mailbox, senderName: "P3" });
  traceEvent("P3", "block", { object: "mailbox", label: "mailbox empty: waiting" });
  const text = (await m.receive(TIMEOUT)).text();
  traceEvent("P3", "receive", { object: "mailbox", label: text, text: `mailbox -> "${text}"` });
} else {
  const prefix = `/deno-ipc-crash-${crypto.randomUUID().slice(0, 8)}`;
  const { mailbox, scratch } = names(prefix);
  const script = import.meta.url;
  const ipc = async (...args: string[]) => {
    trace("main", `$ ipc ${args.join(" ")}`);
    const status = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../cli.ts", script).pathname, ...args],
      stdin: "null",
    }).spawn().status;
    if (status.code !== 0) throw new Error(`ipc ${args[0]} failed with exit code ${status.code}`);
  };
  const until = async (what: string, ready: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const aliveAttached = (name: string) => {
    try {
      return inspectObject(name).attached.filter((p) => p.alive).length;
    } catch {
      return 0;
    }
  };
  const p1 = spawnRole(script, "P1", { prefix });
  const others: Promise<void>[] = [];
  try {
    await until("P1 has made its objects", () => aliveAttached(scratch) === 1);
    for (const name of ["P2", "P3"]) {
      const done = runRole(script, name, { prefix });
      done.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
      others.push(done);
    }
    await until("P2 and P3 wait on the mailbox", () => aliveAttached(mailbox) === 3);
    p1.kill("SIGKILL");
    await p1.status;
    traceEvent("main", "signal", {
      peer: "P1",
      label: "SIGKILL",
      text: `killed P1 (pid ${p1.pid}) with SIGKILL`,
    });
    await ipc("list", "--match", prefix);
    await ipc("clean", "--yes", "--match", prefix);
    {
      using m = Mailbox.open({ name: mailbox, senderName: "main" });
      for (let i = 0; i < 2; i++) {
        await m.send("finish", TIMEOUT);
        traceEvent("main", "send", { object: "mailbox", label: "finish" });
      }
    }
    await Promise.all(others);
    trace("main", "P2 and P3 are done: the ring and the mailbox now belong only to the dead");
    await ipc("list", "--match", prefix);
    await ipc("clean", "--yes", "--match", prefix);
    const left = listObjects().filter((o) => o.name.startsWith(prefix));
    if (left.length > 0) throw new Error(`left behind: ${left.map((o) => o.name).join(", ")}`);
    trace("main", `nothing of ${prefix} is left`);
  } finally {
    try {
      p1.kill("SIGKILL");
    } catch { /* already dead */ }
    await Promise.allSettled(others);
    for (const o of listObjects().filter((o) => o.name.startsWith(prefix))) {
      try {
        SharedMemory.unlink(o.name);
      } catch { /* gone */ }
    }
  }
}

// Creates one object of every kind the library tracks (or opens existing ones), prints
// their names as one JSON line, then waits to be killed.
//   lifecycle_child.ts create PREFIX NAMESPACE   objects named PREFIX-<kind>
//   lifecycle_child.ts open NAME...              rings opened by name (kept open)
//   lifecycle_child.ts race NAME OPENS           opens/closes a ring OPENS times, then holds it
//   lifecycle_child.ts clean NAME                cleanupDead of NAME (without /proc maps)
//   lifecycle_child.ts list-as-nobody NAME       as uid 65534: what listObjects says of NAME
// With DENO_IPC_CRASH_AT (tests/children/_crash.ts) it stops or dies at a named step.
import "./_crash.ts";
import {
  BoundedBuffer,
  cleanupDead,
  DirectEndpoint,
  Doorbell,
  listObjects,
  Mailbox,
  MessageRing,
  NotFoundError,
  SemaphoreBoundedBuffer,
} from "../../mod.ts";

const [command, ...args] = Deno.args;
const keep: Disposable[] = [];

if (command === "create") {
  const [prefix, namespace] = args;
  const ring = MessageRing.create({ name: `${prefix}-ring`, capacity: 1024 });
  ring.trySend(new Uint8Array(5));
  const mailbox = Mailbox.create({ name: `${prefix}-mailbox`, capacity: 4 });
  await mailbox.send(new Uint8Array(3));
  const buffer = BoundedBuffer.create({ name: `${prefix}-bb`, bufferSize: 4, itemSize: 8 });
  const sbuffer = SemaphoreBoundedBuffer.create({
    name: `${prefix}-sbb`,
    bufferSize: 4,
    itemSize: 8,
  });
  const bell = Doorbell.create({ name: `${prefix}-bell` });
  const p = DirectEndpoint.open({ name: "P", namespace });
  const q = DirectEndpoint.open({ name: "Q", namespace });
  await p.send("Q", "hello");
  keep.push(ring, mailbox, buffer, sbuffer, bell, p, q);
  console.log(JSON.stringify([ring.name, mailbox.name, buffer.name, sbuffer.name, bell.name]));
} else if (command === "open") {
  for (const name of args) keep.push(MessageRing.open({ name }));
  console.log(JSON.stringify(args));
} else if (command === "race") {
  const [name, opens] = args;
  let ok = 0;
  let notFound = 0;
  const attempt = (): MessageRing | undefined => {
    try {
      const ring = MessageRing.open({ name });
      // Intact: the shape is whole and a message goes through.
      if (ring.capacity !== 1024) throw new Error(`capacity ${ring.capacity}`);
      ok++;
      return ring;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      notFound++;
      return undefined;
    }
  };
  // Warm up (libc loaded, code compiled) so that the opens race the parent's clean-ups.
  for (let i = 0; i < 20; i++) {
    try {
      MessageRing.open({ name: `${name}-absent` });
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }
  console.log("ready");
  for (let i = 0; i < Number(opens); i++) attempt()?.close();
  const held = attempt();
  if (held) keep.push(held);
  console.log(JSON.stringify({ ok, notFound, holding: held !== undefined }));
} else if (command === "list-as-nobody") {
  const privileges = Deno.dlopen("libc.so.6", {
    setgid: { parameters: ["u32"], result: "i32" },
    setuid: { parameters: ["u32"], result: "i32" },
  });
  if (privileges.symbols.setgid(65534) !== 0 || privileges.symbols.setuid(65534) !== 0) {
    throw new Error("could not drop privileges to nobody (are the tests running as root?)");
  }
  const found = listObjects({ scanMappings: false }).find((o) => o.name === args[0]);
  console.log(JSON.stringify(found ?? null));
  Deno.exit(0);
} else if (command === "clean") {
  console.log(JSON.stringify(cleanupDead({ names: [args[0]], scanMappings: false })));
  Deno.exit(0);
}
setInterval(() => {}, 1 << 30); // until killed

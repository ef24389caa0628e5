// Datagrams and multicast: three receiver processes join one multicast group on the
// loopback interface; one sender process sends each datagram once, to the group, and
// every receiver gets every datagram. The sender uses TTL 0, so nothing leaves the host.
//
//   deno run -A --unstable-net scenarios/udp_multicast.ts
import { DatagramSocket } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const group = values.group;
const port = Number(values.port);
const NEWS = ["market opens", "price 42", "market closes"];
const GROUP = "multicast group";

if (role === "receiver") {
  using socket = await DatagramSocket.joinGroup({ group, port });
  traceEvent(`receiver ${values.index}`, "open", { object: GROUP, label: `join ${group}` });
  await Deno.writeTextFile(values.ready, "+", { append: true }); // tells main: joined
  for (let i = 0; i < NEWS.length; i++) {
    const { data, from } = await socket.receive({ timeout: 10_000 });
    const text = new TextDecoder().decode(data);
    traceEvent(`receiver ${values.index}`, "receive", {
      object: GROUP,
      label: text,
      text: `got "${text}" from ${from.hostname}:${from.port}`,
    });
  }
} else if (role === "sender") {
  using socket = await DatagramSocket.groupSender({ group, port });
  for (const text of NEWS) {
    await socket.send(text);
    traceEvent("sender", "send", {
      object: GROUP,
      label: text,
      text: `sent "${text}" once, to group ${group}:${port}`,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
} else {
  const chosenGroup = `239.255.${1 + Math.floor(Math.random() * 250)}.${
    1 + Math.floor(Math.random() * 250)
  }`;
  const chosenPort = 20_000 + Math.floor(Math.random() * 30_000);
  const ready = await Deno.makeTempFile({ prefix: "deno-ipc-multicast-" });
  try {
    trace("main", `group ${chosenGroup}:${chosenPort}, 3 receivers, 1 sender`);
    const shared = { group: chosenGroup, port: chosenPort, ready };
    const receivers = [1, 2, 3].map((index) =>
      spawnRole(import.meta.url, "receiver", { ...shared, index })
    );
    // Wait until all three have joined, or the first datagrams could reach fewer.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      if ((await Deno.readTextFile(ready)).length >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const sender = spawnRole(import.meta.url, "sender", shared);
    const statuses = await Promise.all([sender, ...receivers].map((child) => child.status));
    if (statuses.some((status) => status.code !== 0)) throw new Error("a process failed");
    trace("main", "every receiver got every datagram");
  } finally {
    await Deno.remove(ready);
  }
}

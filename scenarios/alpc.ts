// ALPC-style local procedure calls (the course text's Windows example): a server
// publishes the connection port "calc"; clients connect, and each message takes the path
// its size calls for: inline through the port, through the client's section, or read by
// the server in place from the client's memory.
//
//   deno run -A --unstable-net scenarios/alpc.ts
import { AlpcClient, AlpcServer } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const MiB = 2 ** 20;

function sum(bytes: Uint8Array): number {
  let total = 0;
  for (let i = 0; i < bytes.length; i += 4096) total += bytes[i];
  return total;
}

if (role === "main") {
  // "calc" plus this run's pid, so that two runs at once do not collide.
  const name = `calc-${Deno.pid}`;
  using server = AlpcServer.create(name, { replySectionSize: 2 * MiB });
  traceEvent("server", "create", {
    object: "connection port",
    text: `published connection port "${name}" (${server.path}, mode 0600)`,
  });
  const held = Promise.withResolvers<void>();
  const run = (client: string) => spawnRole(import.meta.url, client, { port: name });

  const serving = (async () => {
    for await (const event of server) {
      if (event.type === "connect") {
        const { credentials, sectionSize } = event.request;
        const who = new TextDecoder().decode(event.request.payload);
        traceEvent("server", "receive", {
          object: "connection port",
          label: `connection request: ${who}`,
          text: `connection request from "${who}" (pid ${credentials.pid}, ` +
            `uid ${credentials.uid}, section ${sectionSize} bytes)`,
        });
        if (who === "stranger") {
          traceEvent("server", "send", { peer: who, label: "refused", text: `rejected "${who}"` });
          await event.request.reject("calc serves registered clients only");
        } else {
          traceEvent("server", "send", {
            peer: who,
            label: "accepted: a private port pair",
            text: `accepted "${who}": a private pair of communication ports`,
          });
          await event.request.accept({ context: who, payload: `welcome, ${who}` });
        }
      } else if (event.type === "request" || event.type === "datagram") {
        const { message, connection } = event;
        const who = connection.context as string;
        trace(
          "server",
          `${message.kind} ${message.id} from "${who}": ${message.data.length} bytes via ` +
            `the ${message.path} path${
              message.path === "vm" ? " (read in place with process_vm_readv)" : ""
            }`,
        );
        if (message.path === "inline") {
          const text = message.text();
          if (text.startsWith("add ")) {
            const [a, b] = text.slice(4).split(" ").map(Number);
            traceEvent("server", "send", { peer: who, label: `reply ${a + b} (inline)` });
            await message.reply(String(a + b));
          } else if (text === "scale") {
            traceEvent("server", "send", {
              peer: who,
              label: `callback "factor?" (tagged with ${message.id})`,
              text: `callback into "${who}" while its request ${message.id} waits`,
            });
            const factor = await message.callback("factor?");
            trace("server", `callback answered: ${factor.text()} (${factor.path} path)`);
            traceEvent("server", "send", {
              peer: who,
              label: `reply ${21 * Number(factor.text())} (inline)`,
            });
            await message.reply(String(21 * Number(factor.text())));
          } else if (text === "hold") {
            held.resolve(); // never answered: client2 dies waiting
          }
        } else {
          const checksum = sum(message.data);
          message.release();
          traceEvent("server", "send", { peer: who, label: `reply: checksum (inline)` });
          await message.reply(`checksum ${checksum}`);
        }
      } else {
        trace(
          "server",
          `${event.type}: "${event.connection.context}" (pid ${event.connection.credentials.pid})`,
        );
        if (event.type === "client-died") return;
      }
    }
  })();

  for (const client of ["client1", "stranger", "client3"]) {
    const status = await run(client).status;
    if (status.code !== 0) throw new Error(`${client} failed`);
  }
  const client2 = spawnRole(import.meta.url, "client2", { port: name });
  await held.promise;
  traceEvent("server", "signal", {
    peer: "client2",
    label: "SIGKILL",
    text: `killing client2 (pid ${client2.pid}) while its request is in flight`,
  });
  client2.kill("SIGKILL");
  await client2.status;
  await serving;
  trace("server", "done");
} else {
  const port = values.port;
  if (role === "client1") {
    using client = await AlpcClient.connect(port, {
      payload: "client1",
      timeout: 5000,
      onCallback: (message) => {
        trace("client1", `callback "${message.text()}" runs inside the waiting call`);
        traceEvent("client1", "send", { peer: "server", label: "callback reply 2 (inline)" });
        return "2";
      },
    });
    trace(
      "client1",
      `connected without a section: "${new TextDecoder().decode(client.serverPayload)}"`,
    );
    traceEvent("client1", "send", { peer: "server", label: "add 2 3 (inline)" });
    using sum = await client.sendWaitReceive("add 2 3", { timeout: 5000 });
    trace("client1", `add 2 3 = ${sum.text()} (reply via the ${sum.path} path)`);
    traceEvent("client1", "send", { peer: "server", label: "scale (inline)" });
    using scaled = await client.sendWaitReceive("scale", { timeout: 5000 });
    trace("client1", `scale = ${scaled.text()}`);
  } else if (role === "stranger") {
    try {
      await AlpcClient.connect(port, { payload: "stranger", timeout: 5000 });
      throw new Error("expected a refusal");
    } catch (error) {
      trace("stranger", `refused: ${(error as Error).message}`);
      if ((error as Error).name !== "AlpcConnectionRefusedError") throw error;
    }
  } else if (role === "client3") {
    using client = await AlpcClient.connect(port, { payload: "client3", timeout: 5000 });
    const data = new Uint8Array(64 * MiB).fill(1);
    traceEvent("client3", "send", {
      peer: "server",
      label: "64 MiB (vm path: read in place)",
      text: `sending 64 MiB: larger than any section, the server reads it in place`,
    });
    using reply = await client.sendWaitReceive(data, { timeout: 30_000 });
    trace("client3", `${reply.text()} (the buffer stayed pinned until the server was done)`);
  } else if (role === "client2") {
    using client = await AlpcClient.connect(port, {
      payload: "client2",
      sectionSize: 4 * MiB,
      timeout: 5000,
    });
    traceEvent("client2", "send", {
      peer: "server",
      label: "1 MiB (section path)",
      text: `connected with a 4 MiB section; sending 1 MiB`,
    });
    using reply = await client.sendWaitReceive(new Uint8Array(MiB).fill(2), { timeout: 5000 });
    trace("client2", `${reply.text()} (request via the section path)`);
    traceEvent("client2", "send", {
      peer: "server",
      label: "hold (inline)",
      text: "sending a request the server holds; waiting to be killed",
    });
    await client.sendWaitReceive("hold", { timeout: 60_000 });
  }
}

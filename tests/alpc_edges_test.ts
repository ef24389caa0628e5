// Edges of ALPC found in review: error replies of any text, sends that wait when the
// channel ends, an accept racing the server's close, and in-place sends whose peer never
// says it has read them.
import assert from "node:assert/strict";
import {
  AlpcClient,
  type AlpcConnection,
  AlpcRemoteError,
  AlpcServer,
  type AlpcServerEvent,
  PortClosedError,
  TimedOutError,
} from "../mod.ts";
import { libc } from "../ffi/libc.ts";
import {
  encodeHandshake,
  HEADER_SIZE,
  receiveHandshake,
  sendHandshake,
  STATUS,
} from "../lib/_alpc_wire.ts";
import { UnixListener, UnixStream } from "../lib/_unix_socket.ts";
import { OWN_ONLY } from "../lib/_owner.ts";
import { FramedConnection } from "../lib/socket.ts";
import { alpcTest } from "./_alpc_helpers.ts";
import { Child, runChild } from "./_helpers.ts";

function portName(): string {
  return `edges-${crypto.randomUUID().slice(0, 12)}`;
}

async function nextEvent(server: AlpcServer): Promise<AlpcServerEvent> {
  const event = await server.receive({ timeout: 5000 });
  assert.ok(event);
  return event;
}

async function acceptNext(server: AlpcServer): Promise<AlpcConnection> {
  const event = await nextEvent(server);
  assert.equal(event.type, "connect");
  if (event.type !== "connect") throw new Error("unreachable");
  return await event.request.accept();
}

// Settles `promise` or fails the test after `ms` (instead of hanging the suite).
async function settledWithin<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

alpcTest(
  "ALPC error reply with a long non-ASCII message reaches the requester as AlpcRemoteError and the channel stays open",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    const asking = connected.sendWaitReceive("fail", { timeout: 5000 }).then(
      (reply) => reply,
      (error: unknown) => error,
    );
    const event = await nextEvent(server);
    assert.equal(event.type, "request");
    if (event.type !== "request") return;
    // 3000 characters of 3 UTF-8 bytes each: over the frame limit if cut by characters.
    await event.message.fail(new Error("€".repeat(3000)));
    const error = await asking;
    assert.ok(error instanceof AlpcRemoteError, String(error));
    assert.match(error.message, /€€€/);
    assert.equal(connected.closedReason, undefined);
    const again = connected.sendWaitReceive("ok", { timeout: 5000 });
    const second = await nextEvent(server);
    if (second.type !== "request") throw new Error(`expected a request, got ${second.type}`);
    await second.message.reply("fine");
    using reply = await again;
    assert.equal(reply.text(), "fine");
    connected.close();
  },
);

alpcTest(
  "ALPC datagram waiting for section space fails with PortClosedError when the peer closes",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000, sectionSize: 4096 });
    const connection = await acceptNext(server);
    using connected = await client;
    await connected.send(new Uint8Array(4000), { timeout: 5000 });
    const first = await nextEvent(server);
    assert.equal(first.type, "datagram");
    // Not released: the second datagram waits for room in the client's section.
    const waiting = connected.send(new Uint8Array(4000), { timeout: 5000 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    connection.close();
    const error = await waiting;
    assert.ok(error instanceof PortClosedError, String(error));
    connected.close();
  },
);

alpcTest(
  "ALPC accept that the server's close overtakes leaves no open channel behind",
  async () => {
    const server = AlpcServer.create(portName());
    try {
      const client = AlpcClient.connect(server.name, { timeout: 5000 });
      const event = await nextEvent(server);
      if (event.type !== "connect") throw new Error(`expected connect, got ${event.type}`);
      const accepting = event.request.accept();
      server.close();
      const outcome = await accepting.then(
        (connection) => connection.closedReason,
        (error) => error instanceof PortClosedError ? "rejected" : error,
      );
      assert.ok(outcome === "closed" || outcome === "rejected", `accept gave ${outcome}`);
      const connected = await client.catch(() => undefined);
      if (connected) {
        const reason = await settledWithin(connected.closed, 5000, "the client's channel");
        assert.notEqual(reason, undefined);
        connected.close();
      }
      assert.deepEqual(server.connections, []);
    } finally {
      server.close();
      await server.released;
    }
  },
);

alpcTest(
  "ALPC in-place datagram honours its timeout when the peer never says it has read it",
  async () => {
    const name = portName();
    const path = `/tmp/deno-ipc-alpc.${name}`;
    const listener = UnixListener.listen(path, 0o600);
    let framed: FramedConnection | undefined;
    let client: AlpcClient | undefined;
    try {
      // A raw server: accepts, then reads frames and never answers.
      const serving = (async () => {
        const fd = await listener.acceptDescriptor({ timeout: 5000 });
        const hello = await receiveHandshake(fd, name, { timeout: 5000 });
        if (hello.descriptor !== undefined) libc().symbols.close(hello.descriptor);
        await sendHandshake(
          fd,
          encodeHandshake(STATUS.accepted, 0, 256, new Uint8Array()),
          [],
          name,
          {
            timeout: 5000,
          },
        );
        framed = new FramedConnection(new UnixStream(fd, path, true) as unknown as Deno.Conn, {
          maxFrameSize: HEADER_SIZE + 256 + 4096,
        });
        while ((await framed.receive()) !== null) { /* ignore */ }
      })().catch(() => {});
      client = await AlpcClient.connect(name, { timeout: 5000 });
      const sending = client.send(new Uint8Array(1 << 16), { timeout: 200 });
      await assert.rejects(
        settledWithin(sending, 5000, "the in-place datagram"),
        (error) => {
          assert.ok(error instanceof TimedOutError, String(error));
          return true;
        },
      );
      client.close();
      framed?.close();
      await serving;
    } finally {
      client?.close();
      framed?.close();
      listener.close();
      await listener.released;
    }
  },
);

alpcTest(
  "ALPC in place: a peer whose user ids changed since it connected is refused, never read or written",
  async () => {
    // The kernel recorded the client's pid and uid at connect; the pid may since run
    // other credentials (a set-user-ID program it executed, or a process that reused
    // the pid). A server with CAP_SYS_PTRACE (root here) would read or write whatever
    // runs there now. The child connects as root, then becomes uid 65534.
    if (Deno.uid() !== 0) return; // only root can change its user ids freely
    await using server = AlpcServer.create(portName());
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "request") {
          await event.message.reply(String(event.message.data.length)).catch(() => {});
        } else if (event.type !== "datagram") return;
      }
    })();
    const child = await runChild("alpc_child.ts", ["changer", server.name]);
    assert.equal(child.code, 0, child.stderr);
    const { outcome } = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
    assert.match(
      outcome,
      /^AlpcRemoteError: .*process \d+ refused .* now runs as uid 65534/,
      outcome,
    );
    server.close();
    await serving;
  },
);

alpcTest(
  "ALPC remove leaves the port of a server that still listens (false) and removes a dead one's",
  async () => {
    const server = AlpcServer.create(portName());
    try {
      assert.equal(AlpcServer.remove(server.name), false);
      await Deno.lstat(server.path); // still there
      // Clients still reach it.
      const client = AlpcClient.connect(server.name, { timeout: 5000 });
      let event = await nextEvent(server);
      // The probe's connection may come first: it says nothing and is dropped.
      while (event.type !== "connect") event = await nextEvent(server);
      await event.request.accept();
      (await client).close();
    } finally {
      server.close();
      await server.released;
    }
    // A socket file nobody listens on (what a killed server leaves): removed.
    const name = portName();
    const path = `/tmp/deno-ipc-alpc.${name}`;
    const listener = UnixListener.listen(path, 0o600);
    const stale = await Deno.makeTempDir();
    try {
      // Keep a second link so closing the listener (which removes its file) leaves one.
      Deno.linkSync(path, `${stale}/port`);
      listener.close();
      await listener.released;
      Deno.linkSync(`${stale}/port`, path);
      assert.equal(AlpcServer.remove(name), true);
      await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
    } finally {
      listener.close();
      await listener.released;
      Deno.removeSync(stale, { recursive: true });
      try {
        Deno.removeSync(path);
      } catch { /* removed */ }
    }
  },
);

alpcTest(
  "ALPC client close ends a send parked for room on the thread pool at once: released does not wait out the slice",
  async () => {
    // The server reads nothing after the connect, so the child's sends fill the socket
    // and the last one parks in poll(2) on the pool. Its wait slices last 10 minutes:
    // only the shutdown in close() (a closed descriptor wakes no poll) ends that park
    // while this server keeps its end open, so released resolving is the proof.
    await using server = AlpcServer.create(portName());
    await using child = new Child("alpc_child.ts", ["stuck-sender", server.name], ["-A"], {
      DENO_IPC_WAIT_SLICE_MS: "600000",
    });
    await acceptNext(server);
    const stuck = JSON.parse(await settledWithin(child.line(), 60_000, "the stuck send"));
    assert.ok(stuck.stuck > 0 && stuck.parked, JSON.stringify(stuck));
    const released = await settledWithin(child.line(), 20_000, "released after close");
    // Pending right after close: released really waits for the park's return.
    assert.deepEqual(JSON.parse(released), { released: true, pendingAfterClose: true });
    assert.equal((await child.status()).code, 0);
  },
);

alpcTest(
  "ALPC server released, read before close, resolves once a connection's send parked for room is back from the pool",
  async () => {
    // The client takes nothing, so after MAX_BACKLOG datagrams its channel stops reading
    // and the server's sends fill the socket: the last one parks in poll(2) on the pool.
    await using server = AlpcServer.create(portName());
    const connecting = AlpcClient.connect(server.name, { timeout: 5000 });
    const connection = await acceptNext(server);
    await using _client = await connecting;
    const datagram = new Uint8Array(256);
    let parked = false;
    for (let sent = 0; sent < 100_000 && !parked; sent++) {
      const sending = connection.send(datagram);
      sending.catch(() => {});
      parked = !await Promise.race([
        sending.then(() => true, () => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 300)),
      ]);
    }
    assert.ok(parked, "100,000 datagrams were all sent although the client read none");
    const released = server.released; // read before close: must still cover the channel
    let settled = false;
    const watched = released.then(() => settled = true);
    server.close();
    for (let turn = 0; turn < 10; turn++) await Promise.resolve();
    assert.equal(settled, false, "released resolved while the send was still on the pool");
    await settledWithin(watched, 20_000, "server released");
  },
);

alpcTest("ALPC connection send after close rejects with PortClosedError", async () => {
  await using server = AlpcServer.create(portName());
  const client = AlpcClient.connect(server.name, { timeout: 5000 });
  const connection = await acceptNext(server);
  using connected = await client;
  connection.close();
  const sending = (() => {
    try {
      return connection.send("late");
    } catch (error) {
      return `threw synchronously: ${error}`;
    }
  })();
  assert.ok(sending instanceof Promise, String(sending));
  await assert.rejects(sending, PortClosedError);
  connected.close();
});

alpcTest(
  "ALPC accept of a client that already left rejects with PortClosedError (peer-died) and leaks nothing",
  async () => {
    await using server = AlpcServer.create(portName());
    const fd = await UnixStream.connectDescriptor(server.path, OWN_ONLY, { timeout: 5000 });
    await sendHandshake(fd, encodeHandshake(0, 0, 256, new Uint8Array()), [], server.name, {
      timeout: 5000,
    });
    const event = await nextEvent(server);
    libc().symbols.close(fd);
    if (event.type !== "connect") throw new Error(`expected connect, got ${event.type}`);
    await assert.rejects(event.request.accept(), (error: unknown) => {
      assert.ok(error instanceof PortClosedError, String(error));
      assert.equal(error.reason, "peer-died");
      return true;
    });
    assert.deepEqual(server.connections, []);
  },
);

alpcTest(
  "ALPC reply with an invalid argument fails at once and leaves the request answerable; sectionFull is checked on every path",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    const asking = connected.sendWaitReceive("question", { timeout: 5000 });
    asking.catch(() => {}); // awaited below
    const event = await nextEvent(server);
    if (event.type !== "request") throw new Error(`expected a request, got ${event.type}`);
    await assert.rejects(event.message.reply(42 as unknown as string), TypeError);
    await assert.rejects(event.message.reply("x", { timeout: -1 }), RangeError);
    await assert.rejects(
      event.message.reply("x", { sectionFull: "maybe" as "wait" }),
      /Invalid sectionFull/,
    );
    await event.message.reply("answer");
    using reply = await asking;
    assert.equal(reply.text(), "answer");
    await assert.rejects(connected.send("x", { sectionFull: "maybe" as "wait" }), TypeError);
    await assert.rejects(
      connected.sendWaitReceive("x", { sectionFull: "maybe" as "wait" }),
      TypeError,
    );
    assert.equal(connected.inFlight, 0);
    connected.close();
  },
);

alpcTest(
  "ALPC in-place messages not yet taken hold at most about maxMessageSize: then the reader stops and the sender's sends time out",
  async () => {
    const maxMessageSize = 4 * 2 ** 20;
    await using server = AlpcServer.create(portName(), { maxMessageSize });
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    // The server takes nothing more: each 2 MiB datagram read in place stays allocated.
    const payload = new Uint8Array(2 * 2 ** 20);
    let read = 0;
    let stopped = false;
    for (; read < 20; read++) {
      try {
        // Generous: a copy still running when the test ends would be a pending op.
        await connected.send(payload, { timeout: 2000 });
      } catch (error) {
        assert.ok(error instanceof TimedOutError, String(error));
        stopped = true;
        break;
      }
    }
    assert.ok(stopped, `the server read ${read} datagrams of 2 MiB in place (${read * 2} MiB)`);
    assert.ok(read <= 3, `read ${read}`);
    connected.close();
  },
);

alpcTest(
  "ALPC sends right after the peer closed fail with PortClosedError (port-closed), not a raw broken pipe",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    const connection = await acceptNext(server);
    using connected = await client;
    connection.close(); // this side's reader has not seen the goodbye yet
    for (
      const attempt of [
        () => connected.send("x", { timeout: 5000 }),
        () => connected.sendWaitReceive("x", { timeout: 5000 }),
      ]
    ) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(error instanceof PortClosedError, String(error));
        assert.equal(error.reason, "port-closed");
        return true;
      });
    }
    // And the server's side towards a client that closed.
    const other = AlpcClient.connect(server.name, { timeout: 5000 });
    const second = await acceptNext(server);
    (await other).close();
    await assert.rejects(second.send("x", { timeout: 5000 }), PortClosedError);
  },
);

alpcTest(
  "ALPC accept or reject after the server closed is PortClosedError (closed), not 'already answered'",
  async () => {
    const server = AlpcServer.create(portName());
    try {
      const client = AlpcClient.connect(server.name, { timeout: 5000 }).then(
        (connected) => {
          connected.close();
          return "connected";
        },
        (error: unknown) => error,
      );
      const event = await nextEvent(server);
      if (event.type !== "connect") throw new Error(`expected connect, got ${event.type}`);
      server.close();
      await assert.rejects(event.request.accept(), (error: unknown) => {
        assert.ok(error instanceof PortClosedError, String(error));
        assert.equal(error.reason, "closed");
        return true;
      });
      await assert.rejects(event.request.reject("late"), PortClosedError);
      assert.ok((await client) instanceof Error, "refused by the close");
    } finally {
      server.close();
      await server.released;
    }
  },
);

alpcTest(
  "ALPC a section whose size is not a multiple of 64 still carries messages up to its size",
  async () => {
    await using server = AlpcServer.create(portName());
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "request") {
          await event.message.reply(`${event.message.path}:${event.message.data.length}`);
        } else if (event.type !== "datagram") return;
      }
    })();
    using client = await AlpcClient.connect(server.name, { timeout: 5000, sectionSize: 1000 });
    for (const size of [990, 1000, 300]) {
      using reply = await client.sendWaitReceive(new Uint8Array(size), {
        timeout: 2000,
        sectionFull: "fail",
      });
      assert.equal(reply.text(), `section:${size}`);
    }
    client.close();
    await serving;
  },
);

alpcTest(
  "ALPC a throwing onMessage trace hook does not end the client's channel",
  async () => {
    await using server = AlpcServer.create(portName(), {
      onMessage: () => {
        throw new Error("trace failed");
      },
    });
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "request") await event.message.reply("ok");
        else if (event.type !== "datagram") return event.type;
      }
      return "server closed";
    })();
    using client = await AlpcClient.connect(server.name, { timeout: 5000 });
    using reply = await client.sendWaitReceive("x", { timeout: 5000 });
    assert.equal(reply.text(), "ok");
    client.close();
    assert.equal(await serving, "port-closed");
  },
);

alpcTest(
  "ALPC clients that connect and never speak do not hold up another client's connect",
  async () => {
    await using server = AlpcServer.create(portName());
    const silent: number[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        silent.push(await UnixStream.connectDescriptor(server.path, OWN_ONLY, { timeout: 5000 }));
      }
      const client = AlpcClient.connect(server.name, { timeout: 3000 });
      const event = await server.receive({ timeout: 3000 });
      assert.equal(event?.type, "connect");
      if (event?.type !== "connect") return;
      await event.request.accept();
      (await client).close();
    } finally {
      for (const fd of silent) libc().symbols.close(fd);
    }
  },
);

alpcTest(
  "ALPC late replies to more than 1024 requests given up do not end the channel",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    const count = 1100;
    const controller = new AbortController();
    const asked = Array.from(
      { length: count },
      (_, i) => connected.sendWaitReceive(`q${i}`, { signal: controller.signal }).catch(() => {}),
    );
    const held = [];
    while (held.length < count) {
      const event = await nextEvent(server);
      if (event.type === "request") held.push(event.message);
    }
    controller.abort(); // every request given up
    await Promise.all(asked);
    for (const message of held) await message.reply("late");
    // A request after the late replies: answered, on a channel still open.
    const again = connected.sendWaitReceive("again", { timeout: 5000 });
    let event = await nextEvent(server);
    while (event.type !== "request") event = await nextEvent(server);
    await event.message.reply("fresh");
    using reply = await again;
    assert.equal(reply.text(), "fresh");
    assert.equal(connected.closedReason, undefined);
    connected.close();
  },
);

alpcTest(
  "ALPC a late reply written in place into the buffer of a request given up does not end the channel",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    const lent = new Uint8Array(200_000);
    await assert.rejects(
      connected.sendWaitReceive("slow", { timeout: 100, replyBuffer: lent }),
      TimedOutError,
    );
    const event = await nextEvent(server);
    if (event.type !== "request") throw new Error(`expected a request, got ${event.type}`);
    await event.message.reply(new Uint8Array(100_000).fill(7)); // in place, into `lent`
    const again = connected.sendWaitReceive("again", { timeout: 5000 });
    let next = await nextEvent(server);
    while (next.type !== "request") next = await nextEvent(server);
    await next.message.reply("fresh");
    using reply = await again;
    assert.equal(reply.text(), "fresh");
    assert.equal(connected.closedReason, undefined);
    connected.close();
  },
);

alpcTest(
  "ALPC a request or datagram with an already aborted signal is not sent",
  async () => {
    await using server = AlpcServer.create(portName());
    const client = AlpcClient.connect(server.name, { timeout: 5000 });
    await acceptNext(server);
    using connected = await client;
    const controller = new AbortController();
    controller.abort(new Error("gave up before asking"));
    await assert.rejects(
      connected.sendWaitReceive("side effect", { signal: controller.signal }),
      /gave up before asking/,
    );
    await assert.rejects(
      connected.send("side effect", { signal: controller.signal }),
      /gave up before asking/,
    );
    await assert.rejects(server.receive({ timeout: 300 }), TimedOutError);
    connected.close();
  },
);

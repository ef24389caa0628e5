import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AlpcClient,
  AlpcConnectionRefusedError,
  AlpcRemoteError,
  AlpcServer,
  AlreadyExistsError,
  CorruptedError,
  MAX_BACKLOG,
  MAX_CALLBACK_DEPTH,
  MAX_CONNECTION_PAYLOAD,
  PortClosedError,
  RemoteError,
  RpcClient,
  RpcServer,
  SectionFullError,
  TimedOutError,
  UnknownProcedureError,
} from "../mod.ts";
import { Child, delay, propertyRuns } from "./_helpers.ts";
import { alpcTest } from "./_alpc_helpers.ts";

function portName(): string {
  return `test-${crypto.randomUUID().slice(0, 12)}`;
}

// A server child whose disposal also removes its port: a killed server cannot.
class ServerChild extends Child {
  readonly port: string;

  constructor(port: string, replySection: number) {
    super("alpc_child.ts", ["server", port, String(replySection)]);
    this.port = port;
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await super[Symbol.asyncDispose]();
    AlpcServer.remove(this.port);
  }
}

async function startServer(name: string, replySection = 0): Promise<ServerChild> {
  const child = new ServerChild(name, replySection);
  assert.equal(JSON.parse(await child.line()).ready, true);
  return child;
}

function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

function reversed(bytes: Uint8Array): Uint8Array {
  return bytes.slice().reverse();
}

alpcTest("AlpcServer.create refuses a second server of the same name, clearly", async () => {
  const name = portName();
  await using server = AlpcServer.create(name);
  assert.equal(Deno.lstatSync(server.path).mode! & 0o777, 0o600);
  assert.throws(() => AlpcServer.create(name), (error: unknown) => {
    assert.ok(error instanceof AlreadyExistsError);
    assert.match(error.message, /ALPC port ".*": a port of that name exists/);
    return true;
  });
  server.close();
  assert.throws(() => Deno.lstatSync(server.path), Deno.errors.NotFound);
});

alpcTest("ALPC bad arguments are TypeError/RangeError before any syscall", async () => {
  assert.throws(() => AlpcServer.create("../etc"), TypeError);
  assert.throws(() => AlpcServer.create(""), TypeError);
  assert.throws(() => AlpcServer.create("x".repeat(65)), TypeError);
  assert.throws(() => AlpcServer.create("ok", { inlineLimit: 70_000 }), RangeError);
  assert.throws(() => AlpcServer.create("ok", { mode: 0o1777 }), RangeError);
  await assert.rejects(
    AlpcClient.connect("ok", { payload: new Uint8Array(MAX_CONNECTION_PAYLOAD + 1) }),
    RangeError,
  );
  await assert.rejects(AlpcClient.connect("ok", { sectionSize: -1 }), RangeError);
  await assert.rejects(AlpcClient.connect(42 as unknown as string), TypeError);
  // A port nobody serves.
  await assert.rejects(AlpcClient.connect(portName(), { timeout: 1000 }));
});

alpcTest(
  "ALPC connect: the server sees the client's pid and payload, accepts with a context or rejects with a reason",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name);
    const serving = (async () => {
      const seen: number[] = [];
      for await (const event of server) {
        if (event.type === "connect") {
          seen.push(event.request.credentials.pid);
          if (new TextDecoder().decode(event.request.payload) === "no") {
            await event.request.reject("closed for maintenance");
          } else {
            await event.request.accept({ payload: "welcome", context: { n: 7 } });
          }
        } else if (event.type === "request") {
          assert.deepEqual(event.connection.context, { n: 7 });
          await event.message.reply(`pid ${event.connection.credentials.pid}`);
        } else if (event.type === "port-closed") {
          return seen;
        }
      }
      return seen;
    })();
    await assert.rejects(
      AlpcClient.connect(name, { payload: "no", timeout: 5000 }),
      (error: unknown) => {
        assert.ok(error instanceof AlpcConnectionRefusedError);
        assert.equal(error.reason, "closed for maintenance");
        return true;
      },
    );
    using client = await AlpcClient.connect(name, { payload: "yes", timeout: 5000 });
    assert.equal(new TextDecoder().decode(client.serverPayload), "welcome");
    assert.equal(client.serverCredentials.pid, Deno.pid);
    using reply = await client.sendWaitReceive("who", { timeout: 5000 });
    assert.equal(reply.text(), `pid ${Deno.pid}`);
    client.close();
    assert.deepEqual(await serving, [Deno.pid, Deno.pid]);
  },
);

alpcTest(
  "ALPC between processes: random sizes on all three paths arrive byte-exact, many in flight, replies match",
  async () => {
    const name = portName();
    await using _server = await startServer(name, 96 * 1024);
    const sectionSize = 64 * 1024;
    using client = await AlpcClient.connect(name, { sectionSize, timeout: 5000 });
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.nat(256),
            fc.integer({ min: 257, max: sectionSize }),
            fc.integer({
              min: sectionSize + 1,
              max: 300_000,
            }),
          ),
          { minLength: 1, maxLength: 12 },
        ),
        async (sizes) => {
          const replies = await Promise.all(sizes.map(async (size, index) => {
            const data = pattern(size, index);
            const reply = await client.sendWaitReceive(data, { timeout: 10_000 });
            try {
              const expected = size <= 256 ? "inline" : size <= 96 * 1024 ? "section" : "vm";
              assert.equal(reply.path, expected, `reply of ${size} bytes`);
              assert.deepEqual(reply.data, reversed(data));
              seen.add(reply.path);
            } finally {
              reply.release();
            }
            return reply.id;
          }));
          assert.equal(new Set(replies).size, sizes.length);
          assert.equal(client.inFlight, 0);
        },
      ),
      { numRuns: propertyRuns(15) },
    );
    assert.deepEqual([...seen].sort(), ["inline", "section", "vm"]);
    client.close();
  },
);

alpcTest(
  "ALPC replyBuffer: a large reply is written into the requester's buffer in place (process_vm_writev)",
  async () => {
    const name = portName();
    await using _server = await startServer(name);
    using client = await AlpcClient.connect(name, { sectionSize: 4096, timeout: 5000 });
    const data = pattern(200_000, 3);
    const lent = new Uint8Array(300_000);
    using reply = await client.sendWaitReceive(data, { timeout: 10_000, replyBuffer: lent });
    assert.equal(reply.path, "vm");
    assert.equal(reply.data.buffer, lent.buffer, "the reply is a view of the lent buffer");
    assert.deepEqual(reply.data, reversed(data));
    // A lent buffer too small: the reply is pinned and read instead.
    using pinned = await client.sendWaitReceive(data, {
      timeout: 10_000,
      replyBuffer: new Uint8Array(10),
    });
    assert.notEqual(pinned.data.buffer, lent.buffer);
    assert.deepEqual(pinned.data, reversed(data));
  },
);

alpcTest("ALPC datagrams arrive in order on every path with no reply", async () => {
  const name = portName();
  const server = new ServerChild(name, 0);
  await using _ = server;
  await server.line();
  using client = await AlpcClient.connect(name, { sectionSize: 4096, timeout: 5000 });
  await client.send("one");
  await client.send("x".repeat(1000));
  await client.send("y".repeat(5000));
  assert.deepEqual(JSON.parse(await server.line()), { datagram: "one", path: "inline" });
  assert.equal(JSON.parse(await server.line()).path, "section");
  assert.equal(JSON.parse(await server.line()).path, "vm");
  client.close();
});

alpcTest(
  "ALPC section full: the sender fails at once or waits (timeout) until the receiver releases",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name);
    const held: import("../mod.ts").AlpcMessage[] = [];
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "datagram") held.push(event.message);
        else return;
      }
    })();
    using client = await AlpcClient.connect(name, { sectionSize: 8192, timeout: 5000 });
    await client.send(new Uint8Array(4096).fill(1));
    await client.send(new Uint8Array(4096).fill(2));
    await assert.rejects(
      client.send(new Uint8Array(4096), { sectionFull: "fail" }),
      SectionFullError,
    );
    await assert.rejects(client.send(new Uint8Array(4096), { timeout: 50 }), TimedOutError);
    while (held.length < 2) await delay(5);
    assert.equal(held[0].path, "section");
    assert.equal(held[1].data[0], 2);
    const waiting = client.send(new Uint8Array(4096).fill(3), { timeout: 5000 });
    held[0].release();
    assert.equal(held[0].data.length, 0, "a released section view is detached");
    await waiting;
    client.close();
    await serving;
  },
);

alpcTest(
  "ALPC callbacks nest: the waiting call runs the handler, replies, and keeps waiting",
  async () => {
    const name = portName();
    await using _server = await startServer(name);
    const depths: number[] = [];
    using client = await AlpcClient.connect(name, {
      timeout: 5000,
      onCallback: async (message) => {
        depths.push(message.depth);
        const level = Number(message.text().slice(5));
        if (level <= 0) return "bottom";
        const inner = await message.callback(`nest:${level - 1}`);
        return `c${inner.text()}`;
      },
    });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: MAX_CALLBACK_DEPTH - 1 }), async (levels) => {
        depths.length = 0;
        using reply = await client.sendWaitReceive(`nest:${levels}`, { timeout: 10_000 });
        if (levels === 0) assert.equal(reply.text(), "done:");
        else assert.match(reply.text(), /^done:(cs)*c?bottom$|^done:(c|s)*bottom$/);
        assert.equal(depths.length, Math.ceil(levels / 2));
      }),
      { numRuns: propertyRuns(8) },
    );
    // Past the documented depth the call is refused, and the request fails remotely.
    await assert.rejects(
      client.sendWaitReceive(`nest:${MAX_CALLBACK_DEPTH + 2}`, { timeout: 10_000 }),
      (error: unknown) => error instanceof AlpcRemoteError || error instanceof RangeError,
    );
    client.close();
  },
);

alpcTest(
  "ALPC: a killed client is client-died at the server; a closed one port-closed",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name);
    const events: string[] = [];
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "request") continue; // held
        else {
          events.push(`${event.type} ${event.connection.credentials.pid}`);
          if (events.length === 2) return;
        }
      }
    })();
    const victim = new Child("alpc_child.ts", ["client", name, "4096"]);
    const { pid } = JSON.parse(await victim.line());
    await delay(100);
    victim.process.kill("SIGKILL");
    await victim.status();
    using client = await AlpcClient.connect(name, { timeout: 5000 });
    client.close();
    await serving;
    assert.deepEqual(events, [`client-died ${pid}`, `port-closed ${Deno.pid}`]);
    assert.equal(server.connections.length, 0);
  },
);

alpcTest(
  "ALPC: the server's death fails exactly the requests in flight with PortClosedError",
  async () => {
    const name = portName();
    await using server = await startServer(name);
    using client = await AlpcClient.connect(name, { sectionSize: 4096, timeout: 5000 });
    const inFlight = Array.from({ length: 5 }, () => client.sendWaitReceive("hold"));
    for (const request of inFlight) request.catch(() => {}); // settled below
    using done = await client.sendWaitReceive("done", { timeout: 5000 });
    assert.equal(done.text(), "enod");
    assert.equal(client.inFlight, 5);
    server.process.kill("SIGKILL");
    await server.status();
    for (const outcome of await Promise.allSettled(inFlight)) {
      assert.equal(outcome.status, "rejected");
      const error = (outcome as PromiseRejectedResult).reason;
      assert.ok(error instanceof PortClosedError, String(error));
      assert.equal(error.reason, "peer-died");
    }
    assert.equal(await client.closed, "peer-died");
    await assert.rejects(client.sendWaitReceive("more"), PortClosedError);
  },
);

alpcTest(
  "ALPC: a third process can neither open the channel's sockets nor inject into it",
  async () => {
    const name = portName();
    await using _server = await startServer(name);
    using client = await AlpcClient.connect(name, { timeout: 5000 });
    const held = client.sendWaitReceive("hold");
    held.catch(() => {});
    const intruder = new Child("alpc_child.ts", ["intruder", name, String(Deno.pid)]);
    const { results, forgery } = JSON.parse(await intruder.line());
    await intruder.status();
    assert.ok(Object.keys(results).length > 0);
    for (const outcome of Object.values(results)) assert.notEqual(outcome, "opened");
    assert.ok(!String(forgery).startsWith("answered"), forgery);
    using reply = await client.sendWaitReceive("abc", { timeout: 5000 });
    assert.equal(reply.text(), "cba");
    assert.equal(client.inFlight, 1, "the held request is still waiting, untouched");
    await assert.rejects(client.receive({ timeout: 100 }), TimedOutError);
    client.close();
    await assert.rejects(held, PortClosedError);
  },
);

alpcTest(
  "ALPC: a callback tagged with a request that does not wait is answered with an error",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name);
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "request") {
          const message = event.message;
          await message.reply("first");
          // The request was answered: its id no longer waits at the client.
          await assert.rejects(message.callback("late", { timeout: 5000 }), AlpcRemoteError);
          return;
        }
      }
    })();
    using client = await AlpcClient.connect(name, { timeout: 5000, onCallback: () => "never" });
    using reply = await client.sendWaitReceive("go", { timeout: 5000 });
    assert.equal(reply.text(), "first");
    await serving;
    client.close();
    void CorruptedError;
  },
);

alpcTest(
  "RPC over ALPC: the same stubs and errors; large arguments and results go through the section",
  async () => {
    const name = portName();
    const frames: number[] = [];
    await using _server = RpcServer.listen({ transport: "alpc", name }, {
      add: (a: number, b: number) => a + b,
      reverse: (bytes: Uint8Array) => bytes.toReversed(),
      fail: () => {
        throw new RangeError("no");
      },
    });
    using client = await RpcClient.connect<{
      add(a: number, b: number): number;
      reverse(bytes: Uint8Array): Uint8Array;
      fail(): never;
      missing(): never;
    }>({ transport: "alpc", name }, {
      callTimeout: 10_000,
      onFrame: (_, __, bytes) => frames.push(bytes),
    });
    assert.equal(await client.stub.add(2, 3), 5);
    const big = pattern(3 * 2 ** 20, 1);
    assert.deepEqual(await client.stub.reverse(big), reversed(big));
    const mid = pattern(100_000, 2);
    assert.deepEqual(await client.stub.reverse(mid), reversed(mid));
    await assert.rejects(client.stub.fail(), (error: unknown) => {
      assert.ok(error instanceof RemoteError);
      assert.equal(error.remoteName, "RangeError");
      return true;
    });
    await assert.rejects(client.stub.missing(), UnknownProcedureError);
    assert.ok(frames.some((bytes) => bytes > 2 ** 20));
  },
);

alpcTest(
  "ALPC property: a disconnect at a random moment fails exactly the requests still in flight",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant("hold"), fc.integer({ min: 0, max: 30 })), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.integer({ min: 0, max: 40 }),
        fc.constantFrom("kill", "server closes", "client closes"),
        async (requests, afterMs, how) => {
          const name = portName();
          const server = await startServer(name);
          try {
            using client = await AlpcClient.connect(name, { sectionSize: 8192, timeout: 5000 });
            const settled = new Map<number, "replied" | "failed">();
            const calls = requests.map((request, index) => {
              const text = request === "hold" ? "hold" : `slow:${request}`;
              return client.sendWaitReceive(text, { timeout: 10_000 }).then((reply) => {
                assert.equal(reply.text(), text);
                reply.release();
                settled.set(index, "replied");
              }, (error) => {
                settled.set(index, "failed");
                throw error;
              });
            });
            for (const call of calls) call.catch(() => {});
            await delay(afterMs);
            const repliedBefore = new Set(
              [...settled].filter(([, state]) => state === "replied").map(([index]) => index),
            );
            if (how === "kill") server.process.kill("SIGKILL");
            else if (how === "client closes") client.close();
            else await client.sendWaitReceive("bye").catch(() => {}); // never answered
            const outcomes = await Promise.allSettled(calls);
            const expected = how === "kill"
              ? "peer-died"
              : how === "client closes"
              ? "closed"
              : "port-closed";
            outcomes.forEach((outcome, index) => {
              if (repliedBefore.has(index)) assert.equal(outcome.status, "fulfilled");
              if (requests[index] === "hold") assert.equal(outcome.status, "rejected");
              if (outcome.status === "rejected") {
                assert.ok(outcome.reason instanceof PortClosedError, String(outcome.reason));
                // Only a close by this side can race the replies; the others are seen in order.
                if (how !== "client closes" || !repliedBefore.has(index)) {
                  assert.equal(outcome.reason.reason, expected);
                }
              }
            });
            assert.equal(client.inFlight, 0);
          } finally {
            await server[Symbol.asyncDispose]();
          }
        },
      ),
      { numRuns: propertyRuns(6) },
    );
  },
);

alpcTest(
  "ALPC in place: when the kernel forbids reading the peer (no ptrace right), the error says so and names the remedy",
  async (t) => {
    // The server runs without CAP_SYS_PTRACE, and this process makes itself non-dumpable:
    // the kernel then refuses process_vm_readv of this process to the server (EPERM).
    const setpriv = await new Deno.Command("setpriv", { args: ["--version"], stdout: "null" })
      .output().then((output) => output.success, () => false);
    if (!setpriv) {
      t.name; // setpriv(1) is missing: nothing to run the server without the capability
      return;
    }
    const name = portName();
    const server = new Deno.Command("setpriv", {
      args: [
        "--bounding-set=-sys_ptrace",
        "--inh-caps=-sys_ptrace",
        Deno.execPath(),
        "run",
        "-A",
        new URL("./children/alpc_child.ts", import.meta.url).pathname,
        "server",
        name,
        "0",
      ],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    const prctl = Deno.dlopen("libc.so.6", {
      prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
    });
    const PR_SET_DUMPABLE = 4;
    const lines = server.stdout.pipeThrough(new TextDecoderStream())[Symbol.asyncIterator]();
    try {
      assert.match((await lines.next()).value ?? "", /ready/);
      using client = await AlpcClient.connect(name, { timeout: 5000 });
      prctl.symbols.prctl(PR_SET_DUMPABLE, 0n, 0n, 0n, 0n);
      await assert.rejects(
        client.sendWaitReceive(new Uint8Array(100_000), { timeout: 10_000 }),
        (error: unknown) => {
          assert.ok(error instanceof AlpcRemoteError, String(error));
          assert.match(error.message, /process_vm_readv of process \d+ was denied \(EPERM\)/);
          assert.match(error.message, /ptrace/);
          assert.match(error.message, /sectionSize/);
          return true;
        },
      );
      prctl.symbols.prctl(PR_SET_DUMPABLE, 1n, 0n, 0n, 0n);
      // The channel goes on: small messages still pass.
      using reply = await client.sendWaitReceive("abc", { timeout: 5000 });
      assert.equal(reply.text(), "cba");
    } finally {
      prctl.symbols.prctl(PR_SET_DUMPABLE, 1n, 0n, 0n, 0n);
      prctl.close();
      server.kill("SIGKILL");
      await server.status;
      while (!(await lines.next()).done) { /* drain */ }
      AlpcServer.remove(name);
    }
  },
);

alpcTest(
  "ALPC sendWaitReceive: timeout and AbortSignal end the wait; a closed port is PortClosedError; sections are unmapped",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name, { replySectionSize: 65536 });
    const serving = (async () => {
      for await (const event of server) {
        if (event.type === "connect") await event.request.accept();
        else if (event.type === "port-closed") return;
        // requests are held: never answered
      }
    })();
    const sectionMappings = () =>
      Deno.readTextFileSync("/proc/self/maps").split("\n").filter((line) =>
        line.includes("deno-ipc-alpc-section")
      ).length;
    const client = await AlpcClient.connect(name, { sectionSize: 65536, timeout: 5000 });
    // Each side maps its own section and the peer's: 4 mappings in this process.
    assert.equal(sectionMappings(), 4);
    await assert.rejects(client.sendWaitReceive("held", { timeout: 30 }), TimedOutError);
    const controller = new AbortController();
    const aborted = client.sendWaitReceive("held too", { signal: controller.signal });
    controller.abort(new Error("changed my mind"));
    await assert.rejects(aborted, /changed my mind/);
    await assert.rejects(
      client.sendWaitReceive("x", { timeout: -1 }),
      RangeError,
    );
    client.close();
    client.close(); // idempotent
    await assert.rejects(client.sendWaitReceive("after"), PortClosedError);
    await assert.rejects(client.send("after"), PortClosedError);
    await serving;
    assert.equal(sectionMappings(), 0, "both sections unmapped on both sides");
  },
);

alpcTest("ALPC: closing the server refuses the connection requests it never answered", async () => {
  const server = AlpcServer.create(portName());
  const connecting = AlpcClient.connect(server.name, { timeout: 5000 });
  const event = await server.receive({ timeout: 5000 });
  assert.equal(event?.type, "connect");
  server.close();
  await assert.rejects(connecting, (error: unknown) => {
    assert.ok(error instanceof AlpcConnectionRefusedError);
    assert.equal(error.reason, "the server closed");
    return true;
  });
  assert.equal(await server.receive(), null);
  await server.released;
});

alpcTest(
  "ALPC: a client that floods datagrams is stopped by the socket (its sends time out), the server's backlog stays bounded",
  async () => {
    const name = portName();
    await using server = AlpcServer.create(name);
    const connect = server.receive({ timeout: 5000 });
    const connecting = AlpcClient.connect(name, { timeout: 5000 });
    const event = await connect;
    if (event?.type !== "connect") throw new Error("expected a connection request");
    await event.request.accept();
    using client = await connecting;
    const payload = new Uint8Array(200).fill(9);
    let sent = 0;
    let stopped: unknown;
    while (sent < 100_000) {
      try {
        await client.send(payload, { timeout: 200 });
        sent++;
      } catch (error) {
        stopped = error;
        break;
      }
    }
    assert.ok(stopped instanceof TimedOutError, `stopped by ${stopped} after ${sent} datagrams`);
    assert.ok(sent >= MAX_BACKLOG, `only ${sent} datagrams went out`);
    // Everything sent arrives once the server reads, and so does the datagram whose send
    // timed out: it stayed queued whole.
    let received = 0;
    while (received < sent + 1) {
      const next = await server.receive({ timeout: 5000 });
      assert.equal(next?.type, "datagram");
      if (next?.type === "datagram") next.message.release();
      received++;
    }
    client.close();
  },
);

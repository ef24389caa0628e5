import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BadArgumentsError,
  type CallContext,
  ConnectionLostError,
  lookupService,
  marshal,
  Matchmaker,
  type MatchmakerProcedures,
  RemoteError,
  RpcClient,
  RpcServer,
  ServerBusyError,
  ServiceNameTakenError,
  ServiceNotFoundError,
  type SocketAddress,
  TimedOutError,
  UnknownProcedureError,
  unmarshal,
} from "../mod.ts";
import { Child, delay, ipcTest, propertyRuns } from "./_helpers.ts";

type TestProcedures = {
  echo(value: unknown): unknown;
  swap(a: unknown, b: unknown): [unknown, unknown];
  add(a: number, b: number): number;
  slow(ms: number, value: unknown): Promise<unknown>;
  fail(message: string): never;
  positive(n: unknown): number;
  pid(): number;
};

async function startServer(
  address: SocketAddress,
  registry?: SocketAddress,
  name?: string,
): Promise<{ child: Child; address: SocketAddress }> {
  const args = ["rpc-server", JSON.stringify(address)];
  if (registry) args.push(JSON.stringify(registry), name!);
  const child = new Child("socket_child.ts", args, ["-A", "--unstable-net"]);
  return { child, address: JSON.parse(await child.line()) as SocketAddress };
}

async function stop(child: Child): Promise<void> {
  try {
    child.process.kill("SIGTERM");
  } catch { /* exited */ }
  await child.status();
}

async function unixAddress(): Promise<SocketAddress> {
  const path = await Deno.makeTempFile({ prefix: "deno-ipc-rpc-", suffix: ".sock" });
  await Deno.remove(path);
  return { transport: "unix", path };
}

// Values MessagePack carries exactly (undefined becomes null and -0 becomes 0: left out).
const key = fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__");
const { value: marshallable } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double().filter((x) => !Object.is(x, -0)), // MessagePack writes -0 as the integer 0
    fc.maxSafeInteger(),
    fc.string(),
    fc.uint8Array({ maxLength: 64 }),
    fc.bigInt(),
    fc.date({ noInvalidDate: true }),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(key, tie("value"), { maxKeys: 4, noNullPrototype: true }),
  ),
}));

ipcTest("marshal/unmarshal round-trip binary data, bigint, Date and errors", () => {
  fc.assert(fc.property(marshallable, (value) => {
    assert.deepEqual(unmarshal(marshal(value)), value);
  }));
  const error = unmarshal(marshal(new RangeError("out"))) as Error;
  assert.deepEqual([error.name, error.message], ["RangeError", "out"]);
});

ipcTest(
  "RPC over TCP and Unix sockets: random arguments give what the local call gives",
  async () => {
    for (const listenOn of [{ transport: "tcp" as const, port: 0 }, await unixAddress()]) {
      const { child, address } = await startServer(listenOn);
      try {
        using client = await RpcClient.connect<TestProcedures>(address, { callTimeout: 30_000 });
        await fc.assert(
          fc.asyncProperty(marshallable, marshallable, async (a, b) => {
            assert.deepEqual(await client.stub.echo(a), a);
            assert.deepEqual(await client.stub.swap(a, b), [b, a]);
          }),
          { numRuns: propertyRuns(60) },
        );
        assert.notEqual(await client.stub.pid(), Deno.pid, "the procedure ran in this process");
      } finally {
        await stop(child);
      }
    }
  },
);

ipcTest("concurrent calls on one connection each get their own reply", async () => {
  const { child, address } = await startServer({ transport: "tcp", port: 0 });
  try {
    using client = await RpcClient.connect<TestProcedures>(address);
    const delays = Array.from({ length: 50 }, (_, i) => (i * 37) % 23);
    const results = await Promise.all(delays.map((ms, i) => client.stub.slow(ms, i)));
    assert.deepEqual(results, delays.map((_, i) => i));
  } finally {
    await stop(child);
  }
});

ipcTest(
  "distinct errors: remote exception, unknown procedure, bad arguments, timeout",
  async () => {
    const { child, address } = await startServer({ transport: "tcp", port: 0 });
    try {
      using client = await RpcClient.connect<TestProcedures>(address);
      await assert.rejects(client.stub.fail("boom"), (error) => {
        return error instanceof RemoteError && error.remoteName === "RangeError" &&
          error.message === "boom" && error.procedure === "fail";
      });
      await assert.rejects(client.call("nope", []), UnknownProcedureError);
      await assert.rejects(client.call("__proto__", []), UnknownProcedureError);
      await assert.rejects(client.call("add", [1]), /takes 2 arguments, got 1/);
      await assert.rejects(client.call("add", [1]), BadArgumentsError);
      await assert.rejects(client.stub.positive(-4), BadArgumentsError);
      assert.equal(await client.stub.positive(16), 4);
      await assert.rejects(client.call("slow", [500, "late"], { timeout: 30 }), TimedOutError);
      assert.equal(await client.stub.add(2, 3), 5, "the connection survived the timeout");
      await assert.rejects(client.call(42 as never), TypeError);
      await assert.rejects(client.call("echo", [() => {}]), Error);
      await delay(500); // the slow call's reply arrives and is dropped
    } finally {
      await stop(child);
    }
  },
);

ipcTest(
  "a dropped connection fails the calls in flight and later ones with ConnectionLostError",
  async () => {
    const { child, address } = await startServer({ transport: "tcp", port: 0 });
    try {
      using client = await RpcClient.connect<TestProcedures>(address);
      const inFlight = client.stub.slow(10_000, "never");
      inFlight.catch(() => {});
      await delay(50);
      child.process.kill("SIGKILL");
      await assert.rejects(inFlight, ConnectionLostError);
      await assert.rejects(client.stub.add(1, 2), ConnectionLostError);
    } finally {
      await stop(child);
    }
  },
);

ipcTest("the matchmaker finds a service by name, and finds it again after a restart", async () => {
  await using registry = Matchmaker.listen({ transport: "tcp", port: 0 });
  const first = await startServer({ transport: "tcp", port: 0 }, registry.address, "calc");
  let second: Child | undefined;
  try {
    using client = await RpcClient.connectByName<TestProcedures>("calc", {
      registry: registry.address,
    });
    const firstPid = await client.stub.pid();
    await stop(first.child); // unregisters on SIGTERM
    assert.equal(registry.services.has("calc"), false);
    await assert.rejects(client.stub.add(1, 1), ConnectionLostError);
    await assert.rejects(
      RpcClient.connectByName("calc", { registry: registry.address }),
      ServiceNotFoundError,
    );
    second = (await startServer(await unixAddress(), registry.address, "calc")).child;
    using again = await RpcClient.connectByName<TestProcedures>("calc", {
      registry: registry.address,
    });
    assert.notEqual(await again.stub.pid(), firstPid);
    assert.equal(await again.stub.add(20, 22), 42);
  } finally {
    await stop(first.child);
    if (second) await stop(second);
  }
});

ipcTest("malformed input from a raw socket does not take the server down", async () => {
  const { child, address } = await startServer({ transport: "tcp", port: 0 });
  try {
    const garbage = [
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 1, 2]), // absurd frame length
      new Uint8Array([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]), // not MessagePack (0xc1 is never used)
      Uint8Array.of(0, 0, 0, 2, 0x92, 0x07), // MessagePack [7, ...]: truncated array
      (() => {
        const body = marshal({ not: "a call" });
        const bytes = new Uint8Array(4 + body.length);
        new DataView(bytes.buffer).setUint32(0, body.length);
        bytes.set(body, 4);
        return bytes;
      })(),
    ];
    for (const bytes of garbage) {
      const raw = await Deno.connect(address as Deno.ConnectOptions);
      await raw.write(bytes);
      const answer = await raw.read(new Uint8Array(64));
      assert.equal(answer, null, "the server kept a connection that sent garbage");
      raw.close();
    }
    using client = await RpcClient.connect<TestProcedures>(address);
    assert.equal(await client.stub.add(1, 2), 3, "the server stopped serving");
  } finally {
    await stop(child);
  }
});

ipcTest("RpcServer.close() does not wait for a procedure that never settles", async () => {
  const server = RpcServer.listen({ transport: "tcp", port: 0 }, {
    forever: () => new Promise(() => {}),
  });
  using client = await RpcClient.connect(server.address);
  const call = client.call("forever");
  call.catch(() => {});
  await delay(20);
  await server.close();
  await assert.rejects(call, ConnectionLostError);
});

ipcTest(
  "calls beyond maxConcurrentCalls on one connection fail with ServerBusyError; the rest complete",
  async () => {
    await using server = RpcServer.listen({ transport: "tcp", port: 0 }, {
      slow: async (ms: number) => {
        await delay(ms);
        return ms;
      },
    }, { maxConcurrentCalls: 2 });
    using client = await RpcClient.connect(server.address);
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map(() => client.call("slow", [100], { timeout: 10_000 })),
    );
    assert.deepEqual(results.slice(0, 2).map((r) => r.status), ["fulfilled", "fulfilled"]);
    for (const result of results.slice(2)) {
      assert.equal(result.status, "rejected");
      const error = (result as PromiseRejectedResult).reason;
      assert.ok(error instanceof ServerBusyError && error.limit === "calls", String(error));
    }
    // Room again once the calls are done.
    assert.equal(await client.call("slow", [1], { timeout: 10_000 }), 1);
  },
);

ipcTest(
  "a client beyond maxConnections gets ServerBusyError; the connected ones are still served",
  async () => {
    for (const address of [{ transport: "tcp" as const, port: 0 }, await unixAddress()]) {
      await using server = RpcServer.listen(address, { add: (a: number, b: number) => a + b }, {
        maxConnections: 1,
      });
      using first = await RpcClient.connect(server.address);
      assert.equal(await first.call("add", [1, 2], { timeout: 10_000 }), 3);
      using refused = await RpcClient.connect(server.address);
      await assert.rejects(
        refused.call("add", [1, 2], { timeout: 10_000 }),
        (error) => error instanceof ServerBusyError && error.limit === "connections",
      );
      assert.equal(await first.call("add", [2, 3], { timeout: 10_000 }), 5);
      first.close();
      await delay(50);
      using later = await RpcClient.connect(server.address);
      assert.equal(await later.call("add", [4, 5], { timeout: 10_000 }), 9);
    }
  },
);

ipcTest(
  "a procedure sees the caller's pid and uid as the kernel reports them (Unix sockets)",
  async () => {
    const procedures = {
      whoCalls(this: CallContext) {
        return this.peerCredentials ?? null;
      },
    };
    for (const address of [await unixAddress(), { transport: "tcp" as const, port: 0 }]) {
      await using server = RpcServer.listen(address, procedures);
      using client = await RpcClient.connect<typeof procedures>(server.address);
      const expected = address.transport === "unix" ? { pid: Deno.pid, uid: 0, gid: 0 } : null;
      assert.deepEqual(await client.stub.whoCalls(), expected);
    }
  },
);

ipcTest("the matchmaker does not hand a live server's name to another registrant", async () => {
  await using registry = Matchmaker.listen({ transport: "tcp", port: 0 });
  await using owner = RpcServer.listen({ transport: "tcp", port: 0 }, { add: (a: number) => a });
  await owner.registerWith(registry.address, "svc");
  await using thief = RpcServer.listen({ transport: "tcp", port: 0 }, { add: () => 666 });
  await assert.rejects(thief.registerWith(registry.address, "svc"), ServiceNameTakenError);
  using raw = await RpcClient.connect<MatchmakerProcedures>(registry.address);
  await assert.rejects(raw.stub.register("svc", thief.address), (error) => {
    return error instanceof RemoteError && error.remoteName === "ServiceNameTakenError";
  });
  assert.equal(await raw.stub.unregister("svc", owner.address), false, "unregistered by anyone");
  assert.deepEqual(await lookupService("svc", registry.address), owner.address);
  // The owner may register again (and moves nothing).
  await owner.registerWith(registry.address, "svc");
  assert.deepEqual(await lookupService("svc", registry.address), owner.address);

  // A server that no longer answers loses its name.
  const gone = Deno.listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 });
  const goneAddress = { transport: "tcp" as const, hostname: "127.0.0.1", port: gone.addr.port };
  gone.close();
  await raw.stub.register("stale", goneAddress);
  await thief.registerWith(registry.address, "stale");
  assert.deepEqual(await lookupService("stale", registry.address), thief.address);
});

ipcTest("over a Unix-socket matchmaker, another process cannot take a live name", async () => {
  const registryAddress = await unixAddress();
  await using registry = Matchmaker.listen(registryAddress);
  await using owner = RpcServer.listen({ transport: "tcp", port: 0 }, { add: (a: number) => a });
  await owner.registerWith(registry.address, "svc");
  const other = new Child("socket_child.ts", [
    "register",
    JSON.stringify({ transport: "tcp", hostname: "127.0.0.1", port: 1 }),
    "svc",
    JSON.stringify(registry.address),
  ], ["-A", "--unstable-net"]);
  assert.equal(await other.line(), "ServiceNameTakenError");
  assert.equal((await other.status()).code, 0);
  assert.deepEqual(await lookupService("svc", registry.address), owner.address);
  // The same process (as the kernel reports it) may move its own registration.
  using raw = await RpcClient.connect<MatchmakerProcedures>(registry.address);
  await raw.stub.register("svc", { transport: "tcp", hostname: "127.0.0.1", port: 2 });
  assert.equal((await lookupService("svc", registry.address) as { port: number }).port, 2);
});

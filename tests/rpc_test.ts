import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BadArgumentsError,
  ConnectionLostError,
  marshal,
  Matchmaker,
  RemoteError,
  RpcClient,
  RpcServer,
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

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ClosedError,
  DatagramSocket,
  DatagramTooLargeError,
  FramedConnection,
  FramedServer,
  FrameTooLargeError,
  MAX_UDP_PAYLOAD,
  NotASocketError,
  PermissionDeniedError,
  TimedOutError,
  TruncatedFrameError,
} from "../mod.ts";
import { Child, delay, ipcTest, propertyRuns } from "./_helpers.ts";

const UNSTABLE = ["-A", "--unstable-net"];

async function socketPath(): Promise<string> {
  const path = await Deno.makeTempFile({ prefix: "deno-ipc-test-", suffix: ".sock" });
  await Deno.remove(path);
  return path;
}

function frame(message: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(4 + message.length);
  new DataView(bytes.buffer).setUint32(0, message.length);
  bytes.set(message, 4);
  return bytes;
}

ipcTest(
  "framing across processes: random sizes split at random points reassemble exactly",
  async () => {
    const workload = fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 12 })
      .chain((sizes) => {
        const total = sizes.reduce((sum, size) => sum + 4 + size, 0);
        return fc.tuple(
          fc.constant(sizes),
          fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, total - 1) }), { maxLength: 40 })
            .map((points) => points.filter((p) => p < total).sort((a, b) => a - b)),
        );
      });
    await fc.assert(
      fc.asyncProperty(workload, async ([sizes, splits]) => {
        const messages = sizes.map((size, i) =>
          Uint8Array.from({ length: size }, (_, j) => (i * 31 + j * 7) & 0xff)
        );
        const file = await Deno.makeTempFile({ prefix: "deno-ipc-frames-" });
        using server = FramedServer.listen({ transport: "tcp", port: 0 });
        try {
          const stream = new Uint8Array(sizes.reduce((sum, size) => sum + 4 + size, 0));
          let at = 0;
          for (const message of messages) {
            stream.set(frame(message), at);
            at += 4 + message.length;
          }
          await Deno.writeFile(file, stream);
          const port = (server.address as { port: number }).port;
          const writer = new Child("socket_child.ts", [
            "raw-writer",
            String(port),
            file,
            JSON.stringify(splits),
          ]);
          using connection = await server.accept({ timeout: 30_000 });
          for (const expected of messages) {
            assert.deepEqual(await connection.receive({ timeout: 30_000 }), expected);
          }
          assert.equal(await connection.receive({ timeout: 30_000 }), null);
          assert.equal((await writer.status()).code, 0);
        } finally {
          await Deno.remove(file);
        }
      }),
      { numRuns: propertyRuns(5) },
    );
  },
);

ipcTest("echo over TCP and Unix sockets; closeWrite ends the peer's stream with null", async () => {
  for (
    const address of [{ transport: "tcp" as const, port: 0 }, {
      transport: "unix" as const,
      path: await socketPath(),
    }]
  ) {
    using server = FramedServer.listen(address);
    const serving = server.serve(async (connection) => {
      for await (const message of connection) await connection.send(message);
    });
    using client = await FramedConnection.connect(server.address, { timeout: 5000 });
    const sent = ["", "one", "x".repeat(100_000)];
    await Promise.all(sent.map((text) => client.send(text)));
    for (const text of sent) {
      assert.equal(new TextDecoder().decode((await client.receive({ timeout: 5000 }))!), text);
    }
    await client.closeWrite();
    assert.equal(await client.receive({ timeout: 5000 }), null);
    server.close();
    await serving;
    if (address.transport === "unix") {
      assert.throws(() => Deno.statSync(address.path), Deno.errors.NotFound);
    }
  }
});

ipcTest("a receive that times out loses nothing; the next one gets the message", async () => {
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  using client = await FramedConnection.connect(server.address);
  using peer = await server.accept();
  await assert.rejects(client.receive({ timeout: 20 }), TimedOutError);
  const controller = new AbortController();
  const aborted = client.receive({ signal: controller.signal });
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  await peer.send("late");
  assert.equal(new TextDecoder().decode((await client.receive({ timeout: 5000 }))!), "late");
});

ipcTest(
  "oversized frames: refused before sending; a peer announcing one loses only its connection",
  async () => {
    using server = FramedServer.listen({ transport: "tcp", port: 0 }, { maxFrameSize: 1024 });
    const errors: unknown[] = [];
    const serving = server.serve(async (connection) => {
      for await (const message of connection) await connection.send(message);
    }, (error) => errors.push(error));
    using client = await FramedConnection.connect(server.address, { maxFrameSize: 1024 });
    await assert.rejects(client.send(new Uint8Array(1025)), FrameTooLargeError);
    await client.send("still fine");
    assert.equal(
      new TextDecoder().decode((await client.receive({ timeout: 5000 }))!),
      "still fine",
    );

    const raw = await Deno.connect(server.address as Deno.ConnectOptions);
    await raw.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    // Bounded: a server that waits for the 4 GiB it was promised fails here, not hangs.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = await Promise.race([
      raw.read(new Uint8Array(16)),
      new Promise<string>((resolve) => timer = setTimeout(() => resolve("still open"), 10_000)),
    ]).finally(() => clearTimeout(timer));
    raw.close();
    assert.equal(read, null, "the server kept a corrupt stream open");
    await client.send("others are served");
    assert.equal(
      new TextDecoder().decode((await client.receive({ timeout: 5000 }))!),
      "others are served",
    );
    assert.ok(errors.some((error) => error instanceof FrameTooLargeError), String(errors));
    client.close();
    server.close();
    await serving;
  },
);

ipcTest("a frame buffered but for its last bytes is received only once they arrive", async () => {
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  const raw = await Deno.connect(server.address as Deno.ConnectOptions);
  try {
    using connection = await server.accept();
    const first = Uint8Array.of(1, 2, 3);
    const second = Uint8Array.of(4, 5, 6, 7, 8, 9);
    const stream = new Uint8Array([...frame(first), ...frame(second)]);
    // One write: the first receive reads both frames but the last 2 bytes into its buffer.
    await raw.write(stream.subarray(0, stream.length - 2));
    assert.deepEqual(await connection.receive({ timeout: 5000 }), first);
    const receiving = connection.receive({ timeout: 5000 });
    await delay(20);
    await raw.write(stream.subarray(stream.length - 2));
    assert.deepEqual(await receiving, second);
  } finally {
    raw.close();
  }
});

ipcTest("a peer closing mid-frame is a TruncatedFrameError", async () => {
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  const raw = await Deno.connect(server.address as Deno.ConnectOptions);
  using connection = await server.accept();
  await raw.write(new Uint8Array([0, 0, 0, 10, 1, 2, 3]));
  raw.close();
  await assert.rejects(connection.receive({ timeout: 5000 }), (error) => {
    return error instanceof TruncatedFrameError && /7 bytes before the end/.test(error.message);
  });
});

ipcTest("bad addresses and ports are clear errors before any connection", async () => {
  await assert.rejects(FramedConnection.connect({ transport: "tcp", port: 0 }), RangeError);
  await assert.rejects(FramedConnection.connect({ transport: "tcp", port: 70_000 }), RangeError);
  await assert.rejects(
    FramedConnection.connect({ transport: "tcp", hostname: "", port: 80 }),
    TypeError,
  );
  await assert.rejects(FramedConnection.connect({ transport: "sctp" } as never), TypeError);
  await assert.rejects(
    FramedConnection.connect({ transport: "unix", path: "/tmp/" + "x".repeat(120) }),
    RangeError,
  );
  assert.throws(() => FramedServer.listen({ transport: "tcp", port: 1.5 }), RangeError);
  assert.throws(
    () => FramedServer.listen({ transport: "tcp", port: 0 }, { maxFrameSize: -1 }),
    RangeError,
  );
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  assert.equal((server.address as { hostname: string }).hostname, "127.0.0.1");
  using client = await FramedConnection.connect(server.address);
  await assert.rejects(client.send(42 as never), TypeError);
  client.close();
  client.close();
  await assert.rejects(client.send("x"), ClosedError);
  await assert.rejects(client.receive(), ClosedError);
});

ipcTest(
  "datagrams to another process arrive one message each; oversized ones are refused",
  async () => {
    {
      await using child = new Child("socket_child.ts", ["udp-receiver", "3"], UNSTABLE);
      const port = Number(await child.line());
      using socket = DatagramSocket.bind({ maxDatagramSize: 1000 });
      await assert.rejects(
        socket.send(new Uint8Array(1001), { hostname: "127.0.0.1", port }),
        DatagramTooLargeError,
      );
      assert.throws(
        () => DatagramSocket.bind({ maxDatagramSize: MAX_UDP_PAYLOAD + 1 }),
        RangeError,
      );
      await assert.rejects(socket.send("x", { hostname: "127.0.0.1", port: 0 }), RangeError);
      for (const text of ["one", "two", "three"]) {
        await socket.send(text, { hostname: "127.0.0.1", port });
      }
      assert.deepEqual(JSON.parse(await child.line()), ["one", "two", "three"]);
      assert.equal((await child.status()).code, 0);
      await assert.rejects(socket.receive({ timeout: 20 }), TimedOutError);
    }
    // A receive still pending at close() lets go of the descriptor a moment later.
    await delay(50);
  },
);

ipcTest(
  "multicast on loopback: three receiver processes in a group each get every datagram",
  async () => {
    const group = `239.255.${1 + Math.floor(Math.random() * 250)}.${
      1 + Math.floor(Math.random() * 250)
    }`;
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    const receivers = [0, 1, 2].map(() =>
      new Child("socket_child.ts", ["group-receiver", group, String(port), "5"], UNSTABLE)
    );
    try {
      for (const receiver of receivers) assert.equal(await receiver.line(), "ready");
      using sender = await DatagramSocket.groupSender({ group, port });
      const texts = ["a", "b", "c", "d", "e"];
      for (const text of texts) {
        await sender.send(text);
        await delay(2);
      }
      for (const receiver of receivers) {
        assert.deepEqual(JSON.parse(await receiver.line()), texts);
        assert.equal((await receiver.status()).code, 0);
      }
    } finally {
      for (const receiver of receivers) await receiver[Symbol.asyncDispose]();
    }
    await assert.rejects(DatagramSocket.joinGroup({ group: "10.0.0.1", port }), TypeError);
  },
);

ipcTest(
  "concurrent accepts are served in turn; an accept that timed out loses no client",
  async () => {
    using server = FramedServer.listen({ transport: "tcp", port: 0 });
    await assert.rejects(server.accept({ timeout: 10 }), TimedOutError);
    const accepting = [server.accept({ timeout: 5000 }), server.accept({ timeout: 5000 })];
    using first = await FramedConnection.connect(server.address);
    using second = await FramedConnection.connect(server.address);
    const accepted = await Promise.all(accepting);
    await first.send("1");
    await second.send("2");
    const got = await Promise.all(accepted.map((c) => c.receive({ timeout: 5000 })));
    assert.deepEqual(got.map((m) => new TextDecoder().decode(m!)).sort(), ["1", "2"]);
    for (const connection of accepted) connection.close();
  },
);

ipcTest("a receive that gives up in the queue does not let two callers share a frame", async () => {
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  using client = await FramedConnection.connect(server.address);
  using peer = await server.accept();
  const first = client.receive({ timeout: 5000 });
  const second = client.receive({ timeout: 10 });
  const third = client.receive({ timeout: 5000 });
  await assert.rejects(second, TimedOutError);
  await peer.send("one");
  assert.equal(new TextDecoder().decode((await first)!), "one");
  await peer.send("two");
  assert.equal(new TextDecoder().decode((await third)!), "two");
});

ipcTest("concurrent datagram receives get one datagram each", async () => {
  {
    using receiver = DatagramSocket.bind();
    using sender = DatagramSocket.bind();
    const both = Promise.all([
      receiver.receive({ timeout: 5000 }),
      receiver.receive({ timeout: 5000 }),
    ]);
    await sender.send("a", receiver.address);
    await sender.send("b", receiver.address);
    const texts = (await both).map(({ data }) => new TextDecoder().decode(data));
    assert.deepEqual(texts.sort(), ["a", "b"]);
  }
  await delay(50);
});

ipcTest("a Unix socket file gets mode 0600 whatever the umask, or the mode asked for", async () => {
  const previous = Deno.umask(0);
  try {
    for (const [options, expected] of [[{}, 0o600], [{ mode: 0o660 }, 0o660]] as const) {
      const path = await socketPath();
      using server = FramedServer.listen({ transport: "unix", path }, options);
      assert.equal(Deno.lstatSync(path).mode! & 0o777, expected, `mode of ${path}`);
      assert.ok(Deno.lstatSync(path).isSocket);
      server.close();
    }
  } finally {
    Deno.umask(previous);
  }
});

ipcTest("closing a server leaves alone a file that replaced its socket at the path", async () => {
  const path = await socketPath();
  const server = FramedServer.listen({ transport: "unix", path });
  try {
    Deno.removeSync(path);
    Deno.writeTextFileSync(path, "someone else's");
    server.close();
    assert.equal(Deno.readTextFileSync(path), "someone else's");
  } finally {
    server.close();
    Deno.removeSync(path);
  }
  // Still ours at close: removed.
  const ours = FramedServer.listen({ transport: "unix", path });
  ours.close();
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
});

ipcTest(
  "connecting refuses a Unix socket of another user, one open to group/other, or a link",
  async () => {
    const path = await socketPath();
    const link = path + ".link";
    using server = FramedServer.listen({ transport: "unix", path }, { mode: 0o666 });
    try {
      const address = { transport: "unix" as const, path };
      await assert.rejects(FramedConnection.connect(address), (error) => {
        return error instanceof PermissionDeniedError && /0o022/.test(error.message);
      });
      (await FramedConnection.connect(address, { allowModes: 0o022 })).close();
      // Read and execute bits grant nothing on a socket (connecting takes write).
      Deno.chmodSync(path, 0o755);
      (await FramedConnection.connect(address)).close();

      Deno.chmodSync(path, 0o600);
      Deno.chownSync(path, 65534, 65534);
      await assert.rejects(FramedConnection.connect(address), (error) => {
        return error instanceof PermissionDeniedError && /uid 65534/.test(error.message);
      });
      (await FramedConnection.connect(address, { allowOtherOwners: true })).close();

      Deno.chownSync(path, 0, 0);
      Deno.symlinkSync(path, link);
      await assert.rejects(
        FramedConnection.connect({ transport: "unix", path: link }),
        (error) => error instanceof PermissionDeniedError && /symbolic link/.test(error.message),
      );
      const file = path + ".file";
      Deno.writeTextFileSync(file, "");
      try {
        await assert.rejects(
          FramedConnection.connect({ transport: "unix", path: file }),
          NotASocketError,
        );
      } finally {
        Deno.removeSync(file);
      }
    } finally {
      server.close();
      try {
        Deno.removeSync(link);
      } catch { /* not made */ }
    }
  },
);

ipcTest(
  "peerCredentials name the process at each end of a Unix socket, as the kernel saw it",
  async () => {
    const path = await socketPath();
    using server = FramedServer.listen({ transport: "unix", path });
    await using client = new Child("socket_child.ts", ["unix-client", path]);
    using connection = await server.accept({ timeout: 10_000 });
    assert.deepEqual(connection.peerCredentials, { pid: client.process.pid, uid: 0, gid: 0 });
    assert.deepEqual(JSON.parse(await client.line()), { pid: Deno.pid, uid: 0, gid: 0 });
    await connection.send("ok");
    assert.deepEqual(await connection.receive({ timeout: 10_000 }), new TextEncoder().encode("ok"));
    assert.equal(await connection.receive({ timeout: 10_000 }), null);
    assert.equal((await client.status()).code, 0);

    using tcp = FramedServer.listen({ transport: "tcp", port: 0 });
    using tcpClient = await FramedConnection.connect(tcp.address);
    assert.equal(tcpClient.peerCredentials, undefined);
  },
);

ipcTest("a header announcing a huge frame costs memory only as its bytes arrive", async () => {
  using server = FramedServer.listen({ transport: "tcp", port: 0 });
  const raws: Deno.Conn[] = [];
  const accepted: FramedConnection[] = [];
  const receives: Promise<unknown>[] = [];
  try {
    const before = Deno.memoryUsage().external;
    for (let i = 0; i < 40; i++) {
      const raw = await Deno.connect(server.address as Deno.ConnectOptions);
      raws.push(raw);
      await raw.write(new Uint8Array([0x00, 0xff, 0xff, 0xff, 1, 2, 3])); // 16 MiB - 1
      const connection = await server.accept({ timeout: 5000 });
      accepted.push(connection);
      const receive = connection.receive();
      receive.catch(() => {});
      receives.push(receive);
    }
    await delay(50);
    const grown = Deno.memoryUsage().external - before;
    // Reserving the announced length would take 40 x 16 MiB = 640 MiB.
    assert.ok(grown < 40 * 2 ** 20, `external memory grew ${grown} bytes for 40 connections`);
  } finally {
    for (const raw of raws) raw.close();
    for (const connection of accepted) connection.close();
    await Promise.allSettled(receives);
  }
});

ipcTest(
  "a server at maxConnections refuses the next client and goes on serving the others",
  async () => {
    for (
      const address of [{ transport: "tcp" as const, port: 0 }, {
        transport: "unix" as const,
        path: await socketPath(),
      }]
    ) {
      using server = FramedServer.listen(address, { maxConnections: 2, refusalMessage: "busy" });
      using first = await FramedConnection.connect(server.address);
      using second = await FramedConnection.connect(server.address);
      const a = await server.accept({ timeout: 5000 });
      using b = await server.accept({ timeout: 5000 });
      assert.equal(server.openConnections, 2);
      using third = await FramedConnection.connect(server.address);
      const next = server.accept({ timeout: 5000 });
      assert.equal(new TextDecoder().decode((await third.receive({ timeout: 5000 }))!), "busy");
      assert.equal(await third.receive({ timeout: 5000 }), null);
      await first.send("still served");
      assert.equal(new TextDecoder().decode((await a.receive({ timeout: 5000 }))!), "still served");
      a.close();
      assert.equal(server.openConnections, 1);
      using fourth = await FramedConnection.connect(server.address);
      using d = await next;
      await fourth.send("after one left");
      assert.equal(
        new TextDecoder().decode((await d.receive({ timeout: 5000 }))!),
        "after one left",
      );
      await second.send("x");
      assert.equal(new TextDecoder().decode((await b.receive({ timeout: 5000 }))!), "x");
      server.close();
    }
  },
);

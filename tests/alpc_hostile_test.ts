// Hostile ALPC peers: a raw peer that speaks the handshake (lib/_alpc_wire.ts) and then
// writes frames no honest port would. Each must end that channel with a typed error,
// never a crash, a hang, an allocation of the announced size, or another channel's bytes.
import assert from "node:assert/strict";
import { libc } from "../ffi/libc.ts";
import { C } from "../ffi/constants.ts";
import {
  AlpcClient,
  type AlpcConnection,
  AlpcServer,
  type AlpcServerEvent,
  CorruptedError,
  ErrnoError,
  FramedConnection,
} from "../mod.ts";
import {
  encodeFrame,
  encodeHandshake,
  FLAG_WRITTEN,
  type Header,
  KIND,
  makeHeader,
  PATH_CODE,
  receiveHandshake,
  sendHandshake,
  STATUS,
} from "../lib/_alpc_wire.ts";
import { OWN_ONLY } from "../lib/_owner.ts";
import { UnixListener, UnixStream } from "../lib/_unix_socket.ts";
import { cString } from "../lib/_validate.ts";
import { alpcTest } from "./_alpc_helpers.ts";

function portName(): string {
  return `hostile-${crypto.randomUUID().slice(0, 12)}`;
}

function header(fields: Partial<Header>): Header {
  return makeHeader({ kind: KIND.request, id: 1, ...fields });
}

// A raw client: handshake by hand (optionally with `descriptor` as its "section"); once
// the server answered, `framed()` reads the answer and gives a framed connection on
// which anything can be written.
async function rawClient(
  server: AlpcServer,
  sectionSize = 0,
  descriptor?: number,
): Promise<{ framed(): Promise<FramedConnection>; close(): void }> {
  const fd = await UnixStream.connectDescriptor(server.path, OWN_ONLY, { timeout: 5000 });
  await sendHandshake(
    fd,
    encodeHandshake(0, sectionSize, 256, new Uint8Array()),
    descriptor === undefined ? [] : [descriptor],
    server.name,
    { timeout: 5000 },
  );
  if (descriptor !== undefined) libc().symbols.close(descriptor);
  let wrapped: FramedConnection | undefined;
  return {
    async framed() {
      const answer = await receiveHandshake(fd, server.name, { timeout: 5000 });
      if (answer.descriptor !== undefined) libc().symbols.close(answer.descriptor);
      wrapped = new FramedConnection(
        new UnixStream(fd, server.path, false) as unknown as Deno.Conn,
      );
      return wrapped;
    },
    close() {
      if (wrapped) wrapped.close();
      else libc().symbols.close(fd);
    },
  };
}

async function nextEvent(server: AlpcServer): Promise<AlpcServerEvent> {
  const event = await server.receive({ timeout: 5000 });
  assert.ok(event);
  return event;
}

const HOSTILE_FRAMES: [string, Uint8Array][] = [
  ["a reply with an id nothing waits for", encodeFrame(header({ kind: KIND.reply, id: 77 }))],
  ["an unknown kind", encodeFrame(header({ kind: 99 }))],
  ["an unknown path", encodeFrame(header({ path: 9, length: 4 }))],
  ["an inline length that is not the frame's", encodeFrame(header({ length: 5000 }))],
  [
    "a section reference on a channel without a section",
    encodeFrame(header({ path: PATH_CODE.section, length: 100, offset: 0 })),
  ],
  [
    "an in-place message over maxMessageSize",
    encodeFrame(header({ path: PATH_CODE.vm, length: 0xffff_ffff, address: 4096n })),
  ],
  [
    "an in-place message at an address the peer does not have",
    encodeFrame(header({ path: PATH_CODE.vm, length: 4096, address: 8n })),
  ],
  ["a release of section space never handed out", encodeFrame(header({ kind: KIND.free }))],
  ["a frame shorter than a header", new Uint8Array(7)],
];

alpcTest(
  "ALPC hostile client frames end only that channel, as client-died with a typed error",
  async () => {
    await using server = AlpcServer.create(portName(), { maxMessageSize: 2 ** 20 });
    for (const [what, frame] of HOSTILE_FRAMES) {
      const raw = await rawClient(server);
      const connect = await nextEvent(server);
      assert.equal(connect.type, "connect");
      if (connect.type !== "connect") return;
      const connection: AlpcConnection = await connect.request.accept();
      const framed = await raw.framed();
      await framed.send(frame);
      const event = await nextEvent(server);
      assert.equal(event.type, "client-died", what);
      if (event.type !== "client-died") return;
      assert.equal(event.connection, connection);
      if (what.includes("does not have")) {
        // The kernel's answer: EFAULT, as a typed error naming the call.
        assert.ok(event.error instanceof ErrnoError, `${what}: ${event.error}`);
        assert.equal(event.error.code, "EFAULT");
        assert.equal(event.error.syscall, "process_vm_readv");
      } else {
        assert.ok(event.error instanceof CorruptedError, `${what}: ${event.error}`);
      }
      raw.close();
    }
    // The server still serves honest clients.
    const serving = (async () => {
      const event = await nextEvent(server);
      if (event.type === "connect") await event.request.accept();
      const request = await nextEvent(server);
      if (request.type === "request") await request.message.reply("fine");
    })();
    using client = await AlpcClient.connect(server.name, { timeout: 5000 });
    using reply = await client.sendWaitReceive("still there?", { timeout: 5000 });
    assert.equal(reply.text(), "fine");
    await serving;
  },
);

alpcTest("ALPC refuses a section that is not a sealed memfd of the announced size", async () => {
  await using server = AlpcServer.create(portName());
  const { symbols } = libc();
  const cases: [string, () => number, number][] = [
    ["an unsealed memfd", () => {
      const fd = symbols.memfd_create(cString("x"), C.MFD_CLOEXEC);
      symbols.ftruncate(fd, 65536n);
      return fd;
    }, 65536],
    ["a sealed memfd smaller than announced", () => {
      const fd = symbols.memfd_create(cString("x"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING);
      symbols.ftruncate(fd, 4096n);
      symbols.fcntl(fd, C.F_ADD_SEALS, C.F_SEAL_SHRINK | C.F_SEAL_GROW);
      return fd;
    }, 65536],
    ["a pipe", () => {
      const fds = new Int32Array(2);
      symbols.pipe2(new Uint8Array(fds.buffer), C.O_CLOEXEC);
      symbols.close(fds[1]);
      return fds[0];
    }, 65536],
  ];
  for (const [what, make, size] of cases) {
    const raw = await rawClient(server, size, make());
    const event = await nextEvent(server);
    assert.equal(event.type, "connect");
    if (event.type !== "connect") return;
    await assert.rejects(event.request.accept(), CorruptedError, what);
    raw.close();
  }
});

alpcTest(
  "ALPC client: a hostile server's reply with a wrong id fails the requests in flight with CorruptedError",
  async () => {
    const name = portName();
    const path = `/tmp/deno-ipc-alpc.${name}`;
    const listener = UnixListener.listen(path, 0o600);
    try {
      const serving = (async () => {
        const fd = await listener.acceptDescriptor({ timeout: 5000 });
        const hello = await receiveHandshake(fd, name, { timeout: 5000 });
        if (hello.descriptor !== undefined) libc().symbols.close(hello.descriptor);
        await sendHandshake(
          fd,
          encodeHandshake(STATUS.accepted, 0, 256, new Uint8Array()),
          [],
          name,
          { timeout: 5000 },
        );
        const connection = new FramedConnection(
          new UnixStream(fd, path, true) as unknown as Deno.Conn,
        );
        await connection.receive({ timeout: 5000 }); // the request
        await connection.send(encodeFrame(header({ kind: KIND.reply, id: 12345 })));
        return connection;
      })();
      using client = await AlpcClient.connect(name, { timeout: 5000 });
      await assert.rejects(client.sendWaitReceive("hi", { timeout: 5000 }), (error: unknown) => {
        assert.ok(error instanceof CorruptedError);
        assert.equal(error.field, "reply id");
        return true;
      });
      assert.equal(await client.closed, "peer-died");
      (await serving).close();
    } finally {
      listener.close();
    }
  },
);

alpcTest(
  "ALPC: a section reference outside the client's real section is CorruptedError, never other memory",
  async () => {
    await using server = AlpcServer.create(portName());
    const { symbols } = libc();
    const references: [number, number][] = [[65536 - 64, 128], [65536, 1], [100, 10], [
      0xffff_ffc0,
      64,
    ]];
    for (const [offset, length] of references) {
      const fd = symbols.memfd_create(cString("x"), C.MFD_CLOEXEC | C.MFD_ALLOW_SEALING);
      symbols.ftruncate(fd, 65536n);
      symbols.fcntl(fd, C.F_ADD_SEALS, C.F_SEAL_SHRINK | C.F_SEAL_GROW);
      const raw = await rawClient(server, 65536, fd);
      const connect = await nextEvent(server);
      if (connect.type !== "connect") throw new Error("expected a connection request");
      await connect.request.accept();
      const framed = await raw.framed();
      await framed.send(encodeFrame(header({ path: PATH_CODE.section, offset, length })));
      const event = await nextEvent(server);
      assert.equal(event.type, "client-died");
      if (event.type !== "client-died") return;
      assert.ok(event.error instanceof CorruptedError, String(event.error));
      assert.equal(event.error.field, "section reference");
      raw.close();
    }
  },
);

alpcTest(
  "ALPC: a written reply larger than the buffer this side lent is CorruptedError",
  async () => {
    const name = portName();
    const path = `/tmp/deno-ipc-alpc.${name}`;
    const listener = UnixListener.listen(path, 0o600);
    try {
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
        const connection = new FramedConnection(
          new UnixStream(fd, path, true) as unknown as Deno.Conn,
        );
        const request = await connection.receive({ timeout: 5000 });
        const id = new DataView(request!.buffer, request!.byteOffset).getUint32(4, true);
        // Claims to have written 1 MiB into a 1 KiB buffer.
        await connection.send(encodeFrame(header({
          kind: KIND.reply,
          id,
          path: PATH_CODE.vm,
          flags: FLAG_WRITTEN,
          length: 2 ** 20,
        })));
        return connection;
      })();
      using client = await AlpcClient.connect(name, { timeout: 5000 });
      await assert.rejects(
        client.sendWaitReceive("hi", { timeout: 5000, replyBuffer: new Uint8Array(1024) }),
        (error: unknown) => error instanceof CorruptedError && error.field === "written reply",
      );
      (await serving).close();
    } finally {
      listener.close();
    }
  },
);

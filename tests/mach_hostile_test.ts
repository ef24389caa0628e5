// Mach ports against hostile peers: a process holding a send right (or crafting packets
// on the port's socket) sends malformed headers, descriptors of the wrong kind, forged or
// resizable queue tables and floods. The receiver must answer with CorruptedError or a
// message: never a crash, a hang, a leaked descriptor or a queue that grows without bound.
import assert from "node:assert/strict";
import fc from "fast-check";
import { CorruptedError, ReceiveRight } from "../mod.ts";
import { libc } from "../ffi/libc.ts";
import { KIND_MEMORY, KIND_SEND, PacketSender } from "../lib/_mach_wire.ts";
import { ipcTest, propertyRuns } from "./_helpers.ts";

ipcTest(
  "Mach port: a region that is not a sealed memfd is refused as corrupted, and its descriptors closed",
  async () => {
    using port = ReceiveRight.allocate({ label: "victim" });
    using send = port.makeSend();
    const { symbols } = libc();
    const fd = symbols.memfd_create(new TextEncoder().encode("unsealed\0"), 1);
    symbols.ftruncate(fd, 4096n);
    try {
      const wire = send.wire(0);
      const outcome = new PacketSender().send(wire.fds[0], {
        flags: 0,
        id: 1,
        slot: -1,
        onceId: 0,
        body: new Uint8Array(0),
        rights: [{ kind: KIND_MEMORY, role: 0, fds: [fd], onceId: 0 }],
      }, "test");
      assert.equal(outcome, "sent");
    } finally {
      symbols.close(fd);
    }
    await assert.rejects(port.receive({ timeout: 1000 }), CorruptedError);
    assert.equal(port.tryReceive(), undefined);
  },
);

ipcTest(
  "Mach port: hostile packets from a send-right holder give CorruptedError or a message, never a crash, a hang or a leaked descriptor",
  async () => {
    const { symbols } = libc();
    const raw = fc.uint8Array({ minLength: 0, maxLength: 200 });
    const descriptor = fc.record({
      kind: fc.integer({ min: 0, max: 6 }),
      role: fc.integer({ min: 0, max: 4 }),
      count: fc.integer({ min: 0, max: 4 }),
      onceId: fc.integer({ min: 0, max: 3 }),
    });
    const packet = fc.oneof(
      raw.map((bytes) => ({ bytes })),
      fc.record({
        flags: fc.integer({ min: 0, max: 15 }),
        id: fc.integer({ min: -5, max: 5 }),
        slot: fc.integer({ min: -2, max: 1200 }),
        onceId: fc.integer({ min: 0, max: 3 }),
        body: raw,
        rights: fc.array(descriptor, { maxLength: 3 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(packet, { minLength: 1, maxLength: 8 }), async (packets) => {
        using port = ReceiveRight.allocate({ queueLimit: 3, label: "victim" });
        using send = port.makeSend();
        const data = send.wire(0).fds[0];
        const sender = new PacketSender();
        for (const each of packets) {
          if ("bytes" in each) {
            symbols.send(data, each.bytes, BigInt(each.bytes.length), 0x40);
            continue;
          }
          // Real descriptors (pipe ends), as many as each descriptor announces.
          const opened: number[] = [];
          const rights = each.rights.map((right) => {
            const fds: number[] = [];
            for (let i = 0; i < right.count; i++) {
              const pipe = new Int32Array(2);
              symbols.pipe2(new Uint8Array(pipe.buffer), 0o2000000);
              fds.push(pipe[0]);
              opened.push(pipe[0], pipe[1]);
            }
            return { kind: right.kind, role: right.role, fds, onceId: right.onceId };
          });
          try {
            sender.send(data, { ...each, rights }, "hostile");
          } finally {
            for (const fd of opened) symbols.close(fd);
          }
        }
        for (let i = 0; i < packets.length + 1; i++) {
          try {
            const message = port.tryReceive();
            if (message === undefined) break;
            message[Symbol.dispose]();
          } catch (error) {
            assert.ok(error instanceof CorruptedError, String(error));
          }
        }
        // The port still works, and counts right.
        assert.equal(port.tryReceive(), undefined);
        assert.equal(send.trySend({ id: 77 }), "sent");
        using last = await port.receive({ timeout: 1000 });
        assert.equal(last.id, 77);
      }),
      { numRuns: propertyRuns(100) },
    );
  },
);

ipcTest(
  "Mach port: a send-right holder cannot resize the queue table every right maps (which would SIGBUS the receiver)",
  () => {
    using port = ReceiveRight.allocate({ label: "victim" });
    using send = port.makeSend();
    const { symbols } = libc();
    const table = send.wire(0).fds[1];
    const shrunk = symbols.ftruncate(table, 0n);
    // Put the size back at once if it worked: touching the shrunk mapping kills the process.
    if (shrunk === 0) symbols.ftruncate(table, 8192n);
    assert.notEqual(shrunk, 0, "ftruncate of the queue table succeeded");
    assert.notEqual(symbols.ftruncate(table, 16384n), 0, "the queue table grew");
    assert.equal(send.trySend({ id: 1 }), "sent");
    using message = port.tryReceive();
    assert.equal(message?.id, 1);
  },
);

ipcTest(
  "Mach port: a send right whose queue table is not sealed against resizing is refused as corrupted",
  async () => {
    using port = ReceiveRight.allocate({ label: "victim" });
    using send = port.makeSend();
    using other = ReceiveRight.allocate({ label: "forged" });
    const { symbols } = libc();
    using model = other.makeSend();
    const [data, realTable, presence] = model.wire(0).fds;
    // A forged table: same size and contents as a real one, but resizable by its maker.
    const forged = symbols.memfd_create(new TextEncoder().encode("forged\0"), 1);
    try {
      symbols.ftruncate(forged, 8192n);
      const contents = new Uint8Array(8192);
      symbols.pread(realTable, contents, 8192n, 0n);
      symbols.pwrite(forged, contents, 8192n, 0n);
      const outcome = new PacketSender().send(send.wire(0).fds[0], {
        flags: 0,
        id: 1,
        slot: -1,
        onceId: 0,
        body: new Uint8Array(0),
        rights: [{ kind: KIND_SEND, role: 0, fds: [data, forged, presence], onceId: 0 }],
      }, "test");
      assert.equal(outcome, "sent");
    } finally {
      symbols.close(forged);
    }
    await assert.rejects(port.receive({ timeout: 1000 }), CorruptedError);
  },
);

ipcTest(
  "Mach port: a send-right holder flooding the port while a cached message waits cannot grow the receiver's queue without bound",
  () => {
    const { symbols } = libc();
    using port = ReceiveRight.allocate({ queueLimit: 1024, label: "victim" });
    using send = port.makeSend();
    const [data, table] = send.wire(0).fds;
    // A cached message that never gets accepted (the table is writable by every right):
    // each message leaving the queue makes the receiver look through the socket for it.
    const pid = new Int32Array([12345]);
    symbols.pwrite(table, new Uint8Array(pid.buffer), 4n, BigInt((16 + 1024) * 4));
    const pipe = new Int32Array(2);
    symbols.pipe2(new Uint8Array(pipe.buffer), 0o2000000);
    const fdsBefore = Deno.readDirSync("/proc/self/fd").toArray().length;
    let sent = 0;
    let most = 0;
    try {
      const sender = new PacketSender();
      for (let round = 0; round < 400 && sent < 12_000; round++) {
        // Each packet claims a slot it never took, and carries one descriptor.
        while (
          sender.send(data, {
            flags: 0,
            id: sent,
            slot: sent % 1024,
            onceId: 0,
            body: new Uint8Array(0),
            rights: [{ kind: KIND_MEMORY, role: 0, fds: [pipe[0]], onceId: 0 }],
          }, "flood") === "sent"
        ) sent++;
        try {
          port.tryReceive()?.[Symbol.dispose]();
        } catch (error) {
          assert.ok(error instanceof CorruptedError, String(error));
        }
        most = Math.max(most, Deno.readDirSync("/proc/self/fd").toArray().length - fdsBefore);
      }
    } finally {
      symbols.close(pipe[0]);
      symbols.close(pipe[1]);
    }
    assert.ok(most <= 5000, `the receiver took in ${most} descriptors of ${sent} packets`);
  },
);

ipcTest(
  "Mach port: a send right whose sealed queue table lacks the magic number is refused as corrupted, its descriptors closed",
  async () => {
    // (Its table and lock descriptors were closed twice before: a second close(2) of a
    // number another thread may have reused meanwhile. strace shows it; a test cannot.)
    using port = ReceiveRight.allocate({ label: "victim" });
    using send = port.makeSend();
    using other = ReceiveRight.allocate({ label: "forged" });
    using model = other.makeSend();
    const { symbols } = libc();
    const [data, , presence] = model.wire(0).fds;
    const forged = symbols.memfd_create(new TextEncoder().encode("forged\0"), 3);
    try {
      symbols.ftruncate(forged, 8192n);
      assert.equal(symbols.fcntl(forged, 1033, /* F_ADD_SEALS */ 0x7), 0);
      const outcome = new PacketSender().send(send.wire(0).fds[0], {
        flags: 0,
        id: 1,
        slot: -1,
        onceId: 0,
        body: new Uint8Array(0),
        rights: [{ kind: KIND_SEND, role: 0, fds: [data, forged, presence], onceId: 0 }],
      }, "test");
      assert.equal(outcome, "sent");
    } finally {
      symbols.close(forged);
    }
    await assert.rejects(port.receive({ timeout: 1000 }), CorruptedError);
  },
);

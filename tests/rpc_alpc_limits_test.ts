// RPC over ALPC keeps the limits RPC has over sockets: maxFrameSize bounds what is sent
// and accepted, and a client that sends calls without reading its replies stops being
// read (its sends time out) instead of growing the server's memory.
import assert from "node:assert/strict";
import { AlpcClient, FrameTooLargeError, RpcClient, RpcServer, TimedOutError } from "../mod.ts";
import { marshal } from "../lib/rpc.ts";
import { alpcTest } from "./_alpc_helpers.ts";

function portName(): string {
  return `rpclim-${crypto.randomUUID().slice(0, 12)}`;
}

alpcTest(
  "RPC over ALPC: an argument over maxFrameSize fails with FrameTooLargeError before sending, as over sockets",
  async () => {
    const name = portName();
    await using _server = RpcServer.listen({ transport: "alpc", name }, {
      size: (bytes: Uint8Array) => bytes.length,
    });
    using client = await RpcClient.connect<{ size(bytes: Uint8Array): number }>(
      { transport: "alpc", name },
      { callTimeout: 10_000, maxFrameSize: 64 * 1024 },
    );
    assert.equal(await client.stub.size(new Uint8Array(1000)), 1000);
    // As over sockets: the call fails (the send's FrameTooLargeError is its cause) and
    // nothing was written, so the connection goes on.
    await assert.rejects(client.stub.size(new Uint8Array(2 ** 20)), (error: unknown) => {
      assert.ok((error as Error).cause instanceof FrameTooLargeError, String(error));
      return true;
    });
    assert.equal(await client.stub.size(new Uint8Array(10)), 10);
  },
);

alpcTest(
  "RPC over ALPC: a server with maxFrameSize refuses a larger call and drops that client",
  async () => {
    const name = portName();
    const errors: unknown[] = [];
    let calls = 0;
    await using _server = RpcServer.listen({ transport: "alpc", name }, {
      size: (bytes: Uint8Array) => {
        calls++;
        return bytes.length;
      },
    }, { maxFrameSize: 64 * 1024, onClientError: (error) => errors.push(error) });
    using client = await RpcClient.connect<{ size(bytes: Uint8Array): number }>(
      { transport: "alpc", name },
      { callTimeout: 10_000 },
    );
    assert.equal(await client.stub.size(new Uint8Array(1000)), 1000);
    await assert.rejects(client.stub.size(new Uint8Array(2 ** 20)));
    assert.equal(calls, 1, "the oversized call must not run");
  },
);

alpcTest(
  "RPC over ALPC: a client that sends calls and never reads the replies stops being read",
  async () => {
    const name = portName();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => release = resolve);
    await using server = RpcServer.listen({ transport: "alpc", name }, {
      hold: () => held,
    }, { maxConcurrentCalls: 1 });
    void server;
    // Disposed first, and awaited: a send of it still parked on the thread pool is over
    // before the op sanitizer looks.
    await using raw = await AlpcClient.connect(name, { timeout: 5000 });
    let stopped = false;
    try {
      for (let id = 1; id <= 50_000; id++) {
        try {
          await raw.send(marshal([0, id, "hold", []]), { timeout: 300 });
        } catch (error) {
          assert.ok(error instanceof TimedOutError, String(error));
          stopped = true;
          break;
        }
      }
      assert.ok(stopped, "50,000 calls were all taken in although no reply was read");
    } finally {
      release();
    }
  },
);

// No lost wake-ups: a child waits with a 60 s slice (DENO_IPC_WAIT_SLICE_MS) and a 20 s
// timeout, so its wait can end before the deadline only if the parent's action wakes it.
// Without the wake-up (or with one lost) the wait runs to its deadline, and the child
// says so.
import assert from "node:assert/strict";
import { BoundedBuffer, DirectEndpoint, Mailbox, MessageRing } from "../mod.ts";
import { Child, delay, ipcTest, testName } from "./_helpers.ts";

const LONG_SLICE = { DENO_IPC_WAIT_SLICE_MS: "60000" };

async function waitThenAct(args: string[], act: () => Promise<void> | void): Promise<string> {
  const child = new Child("wakeup_child.ts", args, ["-A"], LONG_SLICE);
  try {
    assert.equal(await child.line(), "waiting");
    await delay(300); // past the spin and the yields: the child sleeps on the futex now
    await act();
    const result = await child.line();
    assert.equal(await child.line(), "woken");
    assert.equal((await child.status()).code, 0);
    return result;
  } finally {
    await child[Symbol.asyncDispose]();
  }
}

ipcTest("a receiver sleeping on a MessageRing is woken by the send", async () => {
  using ring = MessageRing.create({ name: testName("wk"), capacity: 1024 });
  try {
    const got = await waitThenAct(["ring", ring.name], () => void ring.trySend(Uint8Array.of(7)));
    assert.equal(got, "[7]");
  } finally {
    ring.unlink();
  }
});

ipcTest("a consumer sleeping on the textbook BoundedBuffer is woken by the producer", async () => {
  using buffer = BoundedBuffer.create({ name: testName("wk"), bufferSize: 4, itemSize: 1 });
  try {
    const got = await waitThenAct(["textbook", buffer.name], () => {
      buffer.trySend(Uint8Array.of(9));
    });
    assert.equal(got, "[9]");
  } finally {
    buffer.unlink();
  }
});

ipcTest("a mailbox receiver is woken by a send; a rendezvous sender by the receive", async () => {
  using box = Mailbox.create({ name: testName("wk"), capacity: 0 });
  try {
    assert.equal(await waitThenAct(["mailbox", box.name], () => void box.send("hi")), '"hi"');
    const got = await waitThenAct(["rendezvous", box.name], () => {
      assert.equal(box.tryReceive()?.text(), "taken?");
    });
    assert.equal(got, '"taken"');
  } finally {
    box.delete();
  }
});

ipcTest("receive() from anyone on a direct endpoint is woken by a peer's send", async () => {
  const namespace = `wk${crypto.randomUUID().slice(0, 8)}`;
  DirectEndpoint.open({ name: "Q", namespace }).close();
  using p = DirectEndpoint.open({ name: "P", namespace });
  try {
    const got = await waitThenAct(["direct", namespace], () => p.send("Q", "from P"));
    assert.equal(got, '"from P"');
  } finally {
    p.unlink();
    using q = DirectEndpoint.open({ name: "Q", namespace });
    q.unlink();
  }
});

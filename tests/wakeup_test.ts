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

// A lock holder whose attempt fails (full, empty) must still wake those who slept because
// it held the lock. The holder stops itself (SIGSTOP) inside its failing attempt; a child
// with a 60 s slice then sleeps on the held lock; the holder continues and releases it.
async function sleepOnFailingHolder(
  holderArgs: string[],
  holderStep: string,
  waiterArgs: string[],
  makeReady: () => void,
): Promise<string> {
  const holder = new Child("channel_child.ts", holderArgs, ["-A"], {
    DENO_IPC_CRASH_AT: holderStep,
    DENO_IPC_CRASH_SIGNAL: "STOP",
  });
  let waiter: Child | undefined;
  try {
    assert.equal(await holder.line(), "trying");
    await waitUntilStopped(holder.process.pid);
    makeReady(); // the waiter's condition holds, but for the lock
    waiter = new Child("wakeup_child.ts", waiterArgs, ["-A"], LONG_SLICE);
    assert.equal(await waiter.line(), "waiting");
    await delay(300); // past the spin: the waiter sleeps on the futex now
    Deno.kill(holder.process.pid, "SIGCONT");
    await holder.line(); // its attempt failed and it released the lock
    const result = await waiter.line();
    assert.equal(await waiter.line(), "woken");
    return result;
  } finally {
    await holder[Symbol.asyncDispose]();
    await waiter?.[Symbol.asyncDispose]();
  }
}

async function waitUntilStopped(pid: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    await delay(10);
  }
  throw new Error(`process ${pid} did not stop`);
}

ipcTest(
  "a sender sleeping on a held send lock is woken when the holder's attempt finds the ring full",
  async () => {
    using ring = MessageRing.create({ name: testName("wk"), capacity: 64, multiProducer: true });
    try {
      assert.equal(ring.trySend(new Uint8Array(56)), true); // full
      const got = await sleepOnFailingHolder(
        ["try-send", ring.name, "8"],
        "ring.send.full",
        ["ring-send", ring.name, "8"],
        () => assert.equal(ring.tryReceive()?.length, 56),
      );
      assert.equal(got, '"sent"');
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "a receiver sleeping on a held receive lock is woken when the holder's attempt finds the ring empty",
  async () => {
    using ring = MessageRing.create({ name: testName("wk"), capacity: 64, multiConsumer: true });
    try {
      const got = await sleepOnFailingHolder(
        ["try-receive", ring.name],
        "ring.receive.empty",
        ["ring", ring.name],
        () => assert.equal(ring.trySend(Uint8Array.of(5)), true),
      );
      assert.equal(got, "[5]");
    } finally {
      ring.unlink();
    }
  },
);

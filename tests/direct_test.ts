import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  ClosedError,
  DirectEndpoint,
  NotFoundError,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest } from "./_helpers.ts";

function namespace(): string {
  return `t${crypto.randomUUID().slice(0, 8)}`;
}

function removeEndpoints(ns: string, names: string[]): void {
  for (const name of names) {
    using endpoint = DirectEndpoint.open({ name, namespace: ns });
    endpoint.unlink();
  }
}

ipcTest(
  "three processes: P and Q name each other, R cannot read their link, receive() tells who sent",
  async () => {
    const ns = namespace();
    const children: Child[] = [];
    try {
      const p = new Child("mailbox_child.ts", ["direct", ns, "P", "Q", "5", "3", "R"]);
      const q = new Child("mailbox_child.ts", ["direct", ns, "Q", "P", "3", "7", "R"]);
      const r = new Child("mailbox_child.ts", ["direct", ns, "R", "Q", "2", "0", "P"]);
      children.push(p, q, r);
      const [fromP, fromQ, fromR] = await Promise.all([p.line(), q.line(), r.line()]);
      for (const child of children) assert.equal((await child.status()).code, 0);

      const reportP = JSON.parse(fromP) as { received: string[]; stray: string | null };
      assert.deepEqual(reportP.received, ["Q:Q>P#0", "Q:Q>P#1", "Q:Q>P#2"]);
      assert.equal(reportP.stray, null);

      const reportQ = JSON.parse(fromQ) as { received: string[]; stray: string | null };
      assert.deepEqual(
        reportQ.received.filter((m) => m.startsWith("P:")),
        ["P:P>Q#0", "P:P>Q#1", "P:P>Q#2", "P:P>Q#3", "P:P>Q#4"],
      );
      assert.deepEqual(reportQ.received.filter((m) => m.startsWith("R:")), ["R:R>Q#0", "R:R>Q#1"]);

      const reportR = JSON.parse(fromR) as { received: string[]; stray: string | null };
      assert.deepEqual(reportR, { received: [], stray: null }, "R read something of P's");
      // Everything P sent went to Q: none of it is reachable through R's endpoint.
      using endpointR = DirectEndpoint.open({ name: "R", namespace: ns });
      assert.equal(endpointR.tryReceive(), undefined, "a message of P's reached R");
      assert.equal(endpointR.tryReceiveFrom("P"), undefined);
    } finally {
      for (const child of children) await child[Symbol.asyncDispose]();
      removeEndpoints(ns, ["P", "Q", "R"]);
    }
  },
);

ipcTest("one link per pair, established on first use by either side", async () => {
  const ns = namespace();
  using p = DirectEndpoint.open({ name: "P", namespace: ns, capacity: 3 });
  using q = DirectEndpoint.open({ name: "Q", namespace: ns, capacity: 9 });
  try {
    assert.deepEqual(p.peers, []);
    await p.send("Q", "first");
    assert.equal(p.linkCapacity("Q"), 3, "the link keeps its establisher's capacity");
    assert.equal(q.linkCapacity("P"), 3);
    assert.deepEqual(q.peers, ["P"]);
    await q.send("P", "back");
    assert.deepEqual(p.peers, ["Q"]);
    assert.equal((await p.receiveFrom("Q")).text(), "back");
    assert.equal((await q.receive()).text(), "first");
    const names = Array.from(Deno.readDirSync("/dev/shm"), (e) => e.name)
      .filter((name) => name.startsWith(`deno-ipc-dc.${ns}.`) && !/\.\d+$/.test(name));
    assert.deepEqual(names.sort(), [
      `deno-ipc-dc.${ns}.P`,
      `deno-ipc-dc.${ns}.P.Q`,
      `deno-ipc-dc.${ns}.Q`,
      `deno-ipc-dc.${ns}.Q.P`,
    ]);
  } finally {
    p.unlink();
    q.unlink();
  }
});

ipcTest("blocking, non-blocking and timed forms on a link", async () => {
  const ns = namespace();
  using p = DirectEndpoint.open({ name: "P", namespace: ns, capacity: 1 });
  using q = DirectEndpoint.open({ name: "Q", namespace: ns });
  try {
    assert.equal(p.trySend("Q", "one"), true);
    assert.equal(p.trySend("Q", "two"), false, "capacity 1 took a second message");
    await assert.rejects(p.send("Q", "two", { timeout: 20 }), TimedOutError);
    assert.equal(q.tryReceiveFrom("P")?.text(), "one");
    assert.equal(q.tryReceiveFrom("P"), undefined);
    assert.equal(q.tryReceive(), undefined);
    await assert.rejects(q.receiveFrom("P", { timeout: 20 }), TimedOutError);
    await assert.rejects(q.receive({ timeout: 20 }), TimedOutError);
    const controller = new AbortController();
    const waiting = q.receive({ signal: controller.signal });
    controller.abort(new Error("cancelled"));
    await assert.rejects(waiting, /cancelled/);
    const later = q.receive({ timeout: 5000 });
    setTimeout(() => p.trySend("Q", "later"), 20);
    assert.equal((await later).sender.name, "P");
    await delay(150); // the aborted wait's last slice finishes on the thread pool
  } finally {
    p.unlink();
    q.unlink();
  }
});

ipcTest("messages wait for a peer that closed; its name can be opened again", async () => {
  const ns = namespace();
  using p = DirectEndpoint.open({ name: "P", namespace: ns });
  try {
    const q = DirectEndpoint.open({ name: "Q", namespace: ns });
    assert.throws(
      () => DirectEndpoint.open({ name: "Q", namespace: ns }),
      AlreadyExistsError,
      "a name open in a live process was opened twice",
    );
    q.close();
    q.close();
    assert.throws(() => q.tryReceive(), ClosedError);
    await p.send("Q", "while you were away");
    using again = DirectEndpoint.open({ name: "Q", namespace: ns });
    const message = await again.receive({ timeout: 1000 });
    assert.deepEqual([message.sender.name, message.text()], ["P", "while you were away"]);
    again.unlink();
  } finally {
    p.unlink();
  }
});

ipcTest("closing an endpoint while a receive is pending frees its name at once", async () => {
  const ns = namespace();
  const first = DirectEndpoint.open({ name: "Q", namespace: ns });
  try {
    const pending = first.receive({ timeout: 5000 });
    pending.catch(() => {});
    await delay(20); // the receive is parked in a wait slice
    first.close();
    await assert.rejects(pending, ClosedError);
    using again = DirectEndpoint.open({ name: "Q", namespace: ns });
    assert.equal(again.closed, false);
    await delay(150); // the closed receive's last slice finishes on the thread pool
  } finally {
    first.close();
    await delay(150);
    removeEndpoints(ns, ["Q"]);
  }
});

ipcTest("unknown peers, self links and bad names are clear errors", async () => {
  const ns = namespace();
  using p = DirectEndpoint.open({ name: "P", namespace: ns });
  try {
    await assert.rejects(p.send("Nobody", "hello?"), (error) => {
      return error instanceof NotFoundError && /No process named "Nobody"/.test(error.message);
    });
    assert.throws(() => p.trySend("P", "me"), /does not link to itself/);
    assert.throws(() => p.trySend("a.b", "x"), TypeError);
    assert.throws(() => DirectEndpoint.open({ name: "", namespace: ns }), TypeError);
    assert.throws(() => DirectEndpoint.open({ name: "x".repeat(41), namespace: ns }), TypeError);
    assert.throws(() => DirectEndpoint.open({ name: "Q", namespace: "a/b" }), TypeError);
    assert.throws(
      () => DirectEndpoint.open({ name: "Q", namespace: ns, capacity: -2 }),
      RangeError,
    );
    assert.throws(() => p.trySend("Nobody", new Uint8Array(5000)), NotFoundError);
  } finally {
    p.unlink();
  }
});

ipcTest(
  "unlink deletes the endpoint and its links; the peer learns it, and can meet a new Q",
  async () => {
    const ns = namespace();
    using p = DirectEndpoint.open({ name: "P", namespace: ns });
    const q = DirectEndpoint.open({ name: "Q", namespace: ns });
    try {
      await p.send("Q", "hello");
      const waiting = q.receiveFrom("P", { timeout: 5000 });
      assert.equal((await waiting).text(), "hello");
      const pending = p.receive({ timeout: 200 });
      q.unlink();
      q.close();
      await assert.rejects(pending, TimedOutError, "receive() from anyone broke on a deleted link");
      await assert.rejects(p.send("Q", "anyone?"), NotFoundError);
      using q2 = DirectEndpoint.open({ name: "Q", namespace: ns });
      await p.send("Q", "hello again");
      assert.equal((await q2.receiveFrom("P", { timeout: 1000 })).text(), "hello again");
      q2.unlink();
    } finally {
      p.unlink();
    }
  },
);

// Mailboxes and direct links when a participant is killed (SIGKILL) or stopped (SIGSTOP)
// inside a critical step: children stop at a named step (lib/_steps.ts, see
// tests/children/step_child.ts), so a kill provably lands inside it.
import assert from "node:assert/strict";
import { DirectEndpoint, Mailbox, TimedOutError } from "../mod.ts";
import { Child, delay, ipcTest, testName } from "./_helpers.ts";

const SETTLE_MS = 150; // an abandoned wait's last slice finishing on the thread pool

function stepChild(
  args: string[],
  stepName: string,
  signal: "SIGKILL" | "SIGSTOP" = "SIGKILL",
  env: Record<string, string> = {},
): Child {
  return new Child("step_child.ts", args, ["-A"], {
    DENO_IPC_CRASH_AT: stepName,
    DENO_IPC_CRASH_SIGNAL: signal === "SIGKILL" ? "KILL" : "STOP",
    DENO_IPC_CRASH_ANNOUNCE: "1",
    ...env,
  });
}

async function assertKilledInStep(child: Child): Promise<void> {
  const status = await child.status();
  assert.equal(status.signal, "SIGKILL", `the child was not killed in its step: ${status.code}`);
}

// The child's next line, or an error after `ms`.
function lineWithin(child: Child, ms: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no line within ${ms} ms`)), ms);
  });
  return Promise.race([child.line(), late]).finally(() => clearTimeout(timer));
}

// Waits until the process is stopped (state T in /proc/PID/stat).
async function untilStopped(pid: number): Promise<void> {
  const started = performance.now();
  while (!/^\d+ \(.*\) T /.test(Deno.readTextFileSync(`/proc/${pid}/stat`))) {
    if (performance.now() - started > 10_000) throw new Error(`process ${pid} did not stop`);
    await delay(5);
  }
}

for (const capacity of [0, 1]) {
  ipcTest(
    `capacity ${capacity}: a receiver killed between taking a message and counting it loses that message only; sends go on`,
    async () => {
      const name = testName("mbc");
      using box = Mailbox.create({ name, capacity });
      try {
        const controller = new AbortController();
        const lost = capacity === 0
          ? box.send("lost", { signal: controller.signal })
          : Promise.resolve(assert.equal(box.trySend("lost"), true));
        lost.catch(() => {});
        await using child = stepChild(["mailbox-receive", name, "1"], "mailbox.receive.taken");
        await assertKilledInStep(child);
        controller.abort(new Error("given up"));
        await lost.catch((error) => assert.match(String(error), /given up/));
        // The dead receiver held the receive lock and never counted its take. At capacity 1
        // a send with no receiver around repairs the count; at 0 a receive attempt does.
        if (capacity === 1) {
          await box.send("next", { timeout: 3000 });
          assert.equal((await box.receive({ timeout: 3000 })).text(), "next");
        } else {
          assert.equal(box.tryReceive(), undefined, "the lost message came back");
          assert.equal(box.queued, 0, "the dead receiver's take was never counted");
          const receiving = box.receive({ timeout: 3000 });
          receiving.catch(() => {});
          await box.send("next", { timeout: 3000 });
          assert.equal((await receiving).text(), "next");
        }
        const again = box.receive({ timeout: 3000 });
        again.catch(() => {});
        await box.send("after", { timeout: 3000 });
        assert.equal((await again).text(), "after");
        assert.equal(box.tryReceive(), undefined, "the lost message came back");
        assert.equal(box.queued, 0);
        await delay(SETTLE_MS);
      } finally {
        box.delete();
      }
    },
  );
}

ipcTest(
  "a receiver killed between taking a message and counting it: the next take, from the record's sequence number, corrects the count",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 2 });
    try {
      assert.equal(box.trySend("lost"), true);
      assert.equal(box.trySend("kept"), true);
      await using child = stepChild(["mailbox-receive", name, "1"], "mailbox.receive.taken");
      await assertKilledInStep(child);
      assert.equal(box.queued, 2, "the dead receiver counted its take");
      assert.equal(box.tryReceive()?.text(), "kept");
      assert.equal(box.queued, 0, "the count still holds the lost message");
      assert.partialDeepStrictEqual(box.stats(), { sent: 2, received: 2, queued: 0 });
      assert.equal(box.trySend("1"), true);
      assert.equal(box.trySend("2"), true);
      assert.equal(box.trySend("3"), false);
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "a sender killed between publishing and counting its message: it is delivered once and capacity still holds",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 1 });
    try {
      await using child = stepChild(["mailbox-send", name, "published"], "mailbox.send.published");
      await assertKilledInStep(child);
      const message = await box.receive({ timeout: 3000 });
      assert.deepEqual([message.text(), message.sender.name], ["published", "child"]);
      assert.equal(box.trySend("a"), true);
      assert.equal(box.trySend("b"), false, "capacity 1 took a second message");
      assert.equal(box.queued, 1);
      assert.equal(box.tryReceive()?.text(), "a");
      assert.equal(box.tryReceive(), undefined);
      assert.equal(box.queued, 0);
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "direct: receive() from anyone finds the message of a peer killed between publishing and counting it",
  async () => {
    const namespace = `t${crypto.randomUUID().slice(0, 8)}`;
    using q = DirectEndpoint.open({ name: "Q", namespace });
    try {
      await using child = stepChild(
        ["direct-send", namespace, "P", "Q", "from a dead P"],
        "mailbox.send.published",
      );
      await assertKilledInStep(child);
      const message = await q.receive({ timeout: 3000 });
      assert.deepEqual([message.sender.name, message.text()], ["P", "from a dead P"]);
      using p = DirectEndpoint.open({ name: "P", namespace }); // its owner is dead
      await p.send("Q", "from a new P", { timeout: 3000 });
      assert.equal((await q.receive({ timeout: 3000 })).text(), "from a new P");
      assert.equal(q.tryReceive(), undefined);
    } finally {
      q.unlink();
      using p = DirectEndpoint.open({ name: "P", namespace });
      p.unlink();
    }
  },
);

ipcTest(
  "direct: a peer stopped while entering itself in the peer table holds up no other peer",
  async () => {
    const namespace = `t${crypto.randomUUID().slice(0, 8)}`;
    using q = DirectEndpoint.open({ name: "Q", namespace });
    try {
      // Its 1st entry is Q in its own table, the 2nd is itself in Q's table.
      await using child = stepChild(
        ["direct-send", namespace, "P", "Q", "from P"],
        "direct.register.claimed",
        "SIGSTOP",
        { DENO_IPC_CRASH_AFTER: "2" },
      );
      assert.equal(await child.line(), "stopped direct.register.claimed");
      await untilStopped(child.process.pid);
      using r = DirectEndpoint.open({ name: "R", namespace });
      assert.equal(r.trySend("Q", "from R"), true);
      const first = await q.receive({ timeout: 3000 });
      assert.deepEqual([first.sender.name, first.text()], ["R", "from R"]);
      child.process.kill("SIGCONT");
      const second = await q.receive({ timeout: 3000 });
      assert.deepEqual([second.sender.name, second.text()], ["P", "from P"]);
      assert.equal(await child.line(), "sent");
      assert.equal((await child.status()).code, 0);
      r.unlink();
    } finally {
      q.unlink();
      using p = DirectEndpoint.open({ name: "P", namespace });
      p.unlink();
    }
  },
);

ipcTest(
  "capacity 0: a receiver killed while its offer is up does not make trySend succeed",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 0 });
    try {
      await using child = stepChild(["mailbox-receive", name, "1"], "mailbox.receive.offered");
      await assertKilledInStep(child);
      assert.equal(box.trySend("nobody receives"), false, "handed to a dead receiver");
      assert.equal(box.queued, 0);
      const receiving = box.receive({ timeout: 3000 });
      receiving.catch(() => {});
      assert.equal(box.trySend("a live receiver"), true);
      assert.equal((await receiving).text(), "a live receiver");
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "a receive waits off the event loop while a stopped process holds the lock; all completes after SIGCONT",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 4 });
    try {
      box.trySend("first");
      box.trySend("second");
      await using child = stepChild(
        ["mailbox-receive", name, "1"],
        "mailbox.receive.taken",
        "SIGSTOP",
      );
      assert.equal(await child.line(), "stopped mailbox.receive.taken");
      await untilStopped(child.process.pid);
      let last = performance.now();
      let largestGap = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        largestGap = Math.max(largestGap, now - last);
        last = now;
      }, 5);
      const started = performance.now();
      try {
        await assert.rejects(box.receive({ timeout: 200 }), TimedOutError);
        const elapsed = performance.now() - started;
        // Liveness bounds, not performance: a spinning wait took 835 ms with a 631 ms gap.
        assert.ok(elapsed < 200 + 300, `receive({ timeout: 200 }) took ${elapsed} ms`);
        const tryStarted = performance.now();
        assert.equal(box.tryReceive(), undefined, "the try form took a locked message");
        const tryElapsed = performance.now() - tryStarted;
        assert.ok(tryElapsed < 100, `tryReceive() took ${tryElapsed} ms`);
        await delay(20);
      } finally {
        clearInterval(ticker);
      }
      assert.ok(largestGap < 100, `the event loop stood still for ${largestGap} ms`);
      const waiting = box.receive({ timeout: 5000 });
      waiting.catch(() => {});
      child.process.kill("SIGCONT");
      assert.equal(await child.line(), JSON.stringify(["first"]));
      assert.equal((await child.status()).code, 0);
      assert.equal((await waiting).text(), "second");
      assert.equal(box.queued, 0);
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "a sender that finds the mailbox full wakes, on release, a sender that slept on its lock",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 1 });
    try {
      box.trySend("m");
      // Holder: finds the mailbox full and stops there, holding the send lock.
      await using holder = stepChild(
        ["mailbox-try-send", name, "h"],
        "mailbox.send.full",
        "SIGSTOP",
      );
      assert.equal(await holder.line(), "stopped mailbox.send.full");
      await untilStopped(holder.process.pid);
      assert.equal(box.tryReceive()?.text(), "m"); // room now, but the lock is held
      // Waiter: its wait slices are 60 s, so only a wake-up ends its sleep in time.
      await using waiter = new Child("step_child.ts", ["mailbox-send", name, "w"], ["-A"], {
        DENO_IPC_WAIT_SLICE_MS: "60000",
      });
      await delay(500); // the waiter finds the lock held and sleeps
      holder.process.kill("SIGCONT");
      assert.equal(await holder.line(), "false");
      assert.equal((await holder.status()).code, 0);
      // The waiter's own send times out after 5 s: a lost wake-up would end only there.
      assert.equal(await lineWithin(waiter, 3000), "sent");
      assert.equal((await box.receive({ timeout: 3000 })).text(), "w");
      assert.equal((await waiter.status()).code, 0);
    } finally {
      box.delete();
    }
  },
);

ipcTest(
  "a receiver that finds the mailbox empty wakes, on release, a receiver that slept on its lock",
  async () => {
    const name = testName("mbc");
    using box = Mailbox.create({ name, capacity: 4 });
    try {
      // Holder: finds the mailbox empty and stops there, holding the receive lock.
      await using holder = stepChild(
        ["mailbox-try-receive", name],
        "mailbox.receive.empty",
        "SIGSTOP",
      );
      assert.equal(await holder.line(), "stopped mailbox.receive.empty");
      await untilStopped(holder.process.pid);
      assert.equal(box.trySend("m"), true); // a message now, but the lock is held
      // Waiter: its wait slices are 60 s, so only a wake-up ends its sleep in time.
      await using waiter = new Child("step_child.ts", ["mailbox-receive", name, "1"], ["-A"], {
        DENO_IPC_WAIT_SLICE_MS: "60000",
      });
      await delay(500); // the waiter finds the lock held and sleeps
      holder.process.kill("SIGCONT");
      assert.equal(await holder.line(), "null");
      assert.equal((await holder.status()).code, 0);
      // The waiter's own receive times out after 5 s: a lost wake-up would end only there.
      assert.equal(await lineWithin(waiter, 3000), JSON.stringify(["m"]));
      assert.equal((await waiter.status()).code, 0);
      assert.equal(box.queued, 0);
    } finally {
      box.delete();
    }
  },
);

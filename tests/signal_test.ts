import assert from "node:assert/strict";
import fc from "fast-check";
import {
  defaultAction,
  Doorbell,
  isProcessAlive,
  NamedSemaphore,
  NotFoundError,
  onSignal,
  processGroupOf,
  processStatus,
  raiseSignal,
  sendSignal,
  sendSignalToGroup,
  SharedMemory,
  signalNumber,
  TimedOutError,
  UnlistenableSignalError,
  waitForSignal,
} from "../mod.ts";
import { processStartTime, processToken } from "../lib/_process.ts";
import { Child, delay, ipcTest, propertyRuns, testName } from "./_helpers.ts";

ipcTest("sendSignal() reaches a listener in another process", async () => {
  await using child = new Child("signal_child.ts", ["listen", "SIGUSR2"]);
  assert.equal(await child.line(), "ready");
  sendSignal(child.process.pid, "SIGUSR2");
  assert.equal(await child.line(), "got SIGUSR2");
  assert.equal((await child.status()).code, 0);
});

ipcTest(
  "a signal with no listener kills by its default action; a listener turns it into an event",
  async () => {
    await using idle = new Child("signal_child.ts", ["idle"]);
    assert.equal(await idle.line(), "ready");
    sendSignal(idle.process.pid, "SIGTERM");
    const status = await idle.status();
    assert.deepEqual([status.success, status.signal, status.code], [false, "SIGTERM", 143]);
    assert.equal(defaultAction("SIGTERM"), "terminate");
  },
);

ipcTest(
  "SIGTERM to a child with a listener lets it remove its kernel objects and exit 0",
  async () => {
    const shmName = testName();
    const semName = testName();
    await using child = new Child("signal_child.ts", ["graceful", shmName, semName]);
    assert.equal(await child.line(), "ready");
    assert.ok(Deno.statSync(`/dev/shm${shmName}`).isFile);
    sendSignal(child.process.pid, "SIGTERM");
    assert.equal(await child.line(), "cleaned up");
    assert.equal((await child.status()).code, 0);
    assert.throws(() => SharedMemory.open({ name: shmName }), NotFoundError);
    assert.throws(() => NamedSemaphore.open({ name: semName }), NotFoundError);
  },
);

ipcTest("processStatus() tells a running process from one that is gone", async () => {
  assert.equal(processStatus(Deno.pid), "running");
  assert.equal(isProcessAlive(Deno.pid), true);
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""] }).spawn();
  await child.status;
  assert.equal(processStatus(child.pid), "no such process");
  assert.equal(isProcessAlive(child.pid), false);
  assert.throws(
    () => sendSignal(child.pid, "SIGTERM"),
    (e: unknown) =>
      e instanceof NotFoundError && e.code === "ESRCH" && e.objectName === `process ${child.pid}`,
  );
});

ipcTest("sendSignalToGroup() reaches every process of a group", async () => {
  await using leader = new Child("signal_child.ts", ["group"]);
  const [pgid, ...members] = (await leader.line()).split(" ").map(Number);
  assert.equal(pgid, leader.process.pid);
  assert.equal(processGroupOf(members[0]), pgid);
  assert.notEqual(processGroupOf(0), pgid);
  sendSignalToGroup(pgid, "SIGTERM");
  assert.equal((await leader.status()).signal, "SIGTERM");
  for (let i = 0; i < 100 && members.some(isProcessAlive); i++) await delay(20);
  assert.deepEqual(members.filter(isProcessAlive), [], "a group member survived");
});

ipcTest("waitForSignal() times out, aborts, and resolves on raiseSignal()", async () => {
  await assert.rejects(
    waitForSignal("SIGUSR2", { timeout: 20 }),
    (e: unknown) => e instanceof TimedOutError && e.code === "ETIMEDOUT",
  );
  const controller = new AbortController();
  const aborted = waitForSignal("SIGUSR2", { signal: controller.signal });
  controller.abort(new Error("never mind"));
  await assert.rejects(aborted, /never mind/);
  const arrived = waitForSignal("SIGUSR2", { timeout: 5000 });
  raiseSignal("SIGUSR2");
  await arrived;
});

ipcTest("onSignal() calls its handler until disposed", async () => {
  let calls = 0;
  {
    using _listening = onSignal("SIGUSR2", () => calls++);
    const arrived = waitForSignal("SIGUSR2", { timeout: 5000 });
    raiseSignal("SIGUSR2");
    await arrived;
  }
  const arrived = waitForSignal("SIGUSR2", { timeout: 5000 });
  raiseSignal("SIGUSR2");
  await arrived;
  assert.equal(calls, 1);
});

for (
  const signal of [
    "SIGKILL",
    "SIGSTOP",
    "SIGSEGV",
    "SIGILL",
    "SIGFPE",
    "SIGBUS",
    "SIGUSR1",
  ] as const
) {
  ipcTest(`listening for ${signal} is an UnlistenableSignalError that says why`, async () => {
    assert.throws(
      () => onSignal(signal, () => {}),
      (e: unknown) =>
        e instanceof UnlistenableSignalError && e.signal === signal && e.message.includes(signal),
    );
    await assert.rejects(waitForSignal(signal), UnlistenableSignalError);
    assert.throws(() => Doorbell.create({ signal }), UnlistenableSignalError);
  });
}

ipcTest("SIGUSR1 is refused because Deno's debugger owns it", () => {
  assert.throws(() => onSignal("SIGUSR1", () => {}), /debugger/);
});

const badSignalCalls: [string, () => unknown, typeof TypeError | typeof RangeError][] = [
  // deno-lint-ignore no-explicit-any
  ["an unknown signal name", () => sendSignal(Deno.pid, "SIGFOO" as any), TypeError],
  // deno-lint-ignore no-explicit-any
  ["a signal number instead of a name", () => sendSignal(Deno.pid, 15 as any), TypeError],
  ["pid 0 (the caller's group)", () => sendSignal(0, "SIGTERM"), RangeError],
  ["a negative pid", () => sendSignal(-1, "SIGTERM"), RangeError],
  ["a fractional pid", () => processStatus(1.5), RangeError],
  // deno-lint-ignore no-explicit-any
  ["a string pid", () => isProcessAlive("1" as any), TypeError],
  ["group 0", () => sendSignalToGroup(0), RangeError],
  // deno-lint-ignore no-explicit-any
  ["a handler that is not a function", () => onSignal("SIGUSR2", "x" as any), TypeError],
  // deno-lint-ignore no-explicit-any
  ["an unknown name to signalNumber", () => signalNumber("KILL" as any), TypeError],
];

for (const [why, call, ErrorClass] of badSignalCalls) {
  ipcTest(`signals reject ${why} before any syscall`, () => {
    assert.throws(call, ErrorClass);
  });
}

ipcTest(
  "Doorbell counts rings while nobody listens and reports them when a listener starts",
  async () => {
    using bell = Doorbell.create({ name: testName() });
    try {
      assert.equal(bell.ring(), false);
      assert.equal(bell.ring(4), false);
      assert.equal(bell.rung, 5);
      using listener = Doorbell.open({ name: bell.name });
      const batches: number[] = [];
      using _listening = listener.listen((events) => batches.push(events));
      assert.equal(listener.receiver, Deno.pid);
      await delay(0);
      assert.deepEqual(batches, [5]);
      assert.equal(bell.ring(), true);
      assert.equal(await listener.wait({ timeout: 5000 }), 1);
      assert.deepEqual(batches, [5, 1]);
    } finally {
      bell.unlink();
    }
  },
);

ipcTest(
  "Doorbell: one listening process at a time; a dead listener is replaced, its events kept",
  async () => {
    using bell = Doorbell.create({ name: testName() });
    try {
      const child = new Child("signal_child.ts", ["doorbell", bell.name, "1000000"]);
      assert.equal(await child.line(), "ready");
      assert.throws(() => bell.listen(), /already has a listener: process/);
      child.process.kill("SIGKILL");
      await child.status();
      assert.equal(bell.ring(3), false, "rang a dead listener");
      assert.equal(bell.receiver, 0);
      using listener = Doorbell.open({ name: bell.name });
      const batches: number[] = [];
      using _listening = listener.listen((events) => batches.push(events));
      await delay(0);
      assert.ok(batches.reduce((a, b) => a + b, 0) >= 3, "events rung meanwhile were lost");
    } finally {
      bell.unlink();
    }
  },
);

ipcTest(
  "Doorbell: a listener that stops just after a ring's signal arrived exits cleanly, not killed by it",
  async () => {
    // The listener sees both events from the counter, maybe before the second signal
    // came, stops and exits; a signal Deno had taken but not yet passed on would kill it.
    for (let run = 0; run < 30; run++) {
      using bell = Doorbell.create({ name: testName("bell") });
      try {
        await using receiver = new Child("signal_child.ts", ["doorbell", bell.name, "2"]);
        assert.equal(await receiver.line(), "ready");
        bell.ring();
        bell.ring();
        assert.match(await receiver.line(), /^events 2 /);
        const { code, signal } = await receiver.status();
        assert.deepEqual({ code, signal }, { code: 0, signal: null });
      } finally {
        bell.unlink();
      }
    }
  },
);

ipcTest("Doorbell: a second handle in the listening process cannot listen too", () => {
  using bell = Doorbell.create({ name: testName() });
  try {
    using other = Doorbell.open({ name: bell.name });
    using _listening = bell.listen();
    assert.throws(() => other.listen(), /in this process \(another handle\)/);
    assert.equal(bell.receiver, Deno.pid);
  } finally {
    bell.unlink();
  }
});

ipcTest("Doorbell: close() rejects a pending wait() with ClosedError", async () => {
  const bell = Doorbell.create({ name: testName() });
  try {
    const waiting = bell.wait();
    waiting.catch(() => {});
    await delay(5);
    bell.close();
    await assert.rejects(waiting, /closed/);
  } finally {
    Doorbell.unlink(bell.name);
  }
});

ipcTest("Doorbell.wait() times out and aborts; after close() it throws ClosedError", async () => {
  const bell = Doorbell.create({ name: testName() });
  try {
    await assert.rejects(bell.wait({ timeout: 20 }), TimedOutError);
    await assert.rejects(bell.wait({ signal: AbortSignal.abort() }), { name: "AbortError" });
    assert.equal(bell.receiver, 0);
    bell.close();
    bell.close();
    assert.throws(() => bell.ring(), /closed/);
    await assert.rejects(bell.wait(), /closed/);
  } finally {
    Doorbell.unlink(bell.name);
  }
});

ipcTest(
  "Doorbell: a receiver counts every event sent with random spacing, though signals coalesce",
  async () => {
    const spacings = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 });
    let coalesced = false;
    await fc.assert(
      fc.asyncProperty(spacings, async (gaps) => {
        using bell = Doorbell.create({ name: testName("bell") });
        try {
          await using receiver = new Child("signal_child.ts", [
            "doorbell",
            bell.name,
            String(gaps.length),
          ]);
          assert.equal(await receiver.line(), "ready");
          for (const gap of gaps) {
            bell.ring();
            if (gap > 0) await delay(gap);
          }
          const [, events, , signals] = (await receiver.line()).split(" ").map(Number);
          assert.equal(events, gaps.length, "an event was lost");
          assert.ok(signals <= gaps.length);
          if (signals < gaps.length) coalesced = true;
          assert.equal((await receiver.status()).code, 0);
        } finally {
          bell.unlink();
        }
      }),
      { numRuns: propertyRuns(8) },
    );
    assert.ok(coalesced, "no run had signals coalesce: the property did not test what it claims");
  },
);

// A process that must not be signalled: `sleep` dies of SIGUSR2 or SIGKILL.
async function bystander(
  uid?: number,
): Promise<{ process: Deno.ChildProcess; exited: () => boolean }> {
  // cwd "/": another user may not be able to enter this process's working directory.
  const process = new Deno.Command("sleep", {
    args: ["30"],
    cwd: "/",
    ...(uid === undefined ? {} : { uid }),
  }).spawn();
  let done = false;
  process.status.then(() => done = true);
  for (let i = 0; i < 100 && processStartTime(process.pid) === undefined; i++) await delay(5);
  return { process, exited: () => done };
}

// The doorbell's receiver word: pid and signal in the low 32 bits, start time in the high.
function writeReceiver(name: string, pid: number, start: number, signal: number): void {
  using shm = SharedMemory.open({ name });
  const word = processToken(pid, start) | (BigInt(signal) << 24n);
  Atomics.store(shm.view(BigInt64Array, 0, 4), 2, word);
}

ipcTest(
  "Doorbell.ring() never signals what shared memory names: another signal, a reused pid, pid 0, another user",
  async () => {
    using bell = Doorbell.create();
    const victim = await bystander();
    const foreign = await bystander(65534);
    try {
      const start = processStartTime(victim.process.pid)!;
      // SIGKILL written as the listener's signal: refused, nothing sent.
      writeReceiver(bell.name, victim.process.pid, start, 9);
      assert.throws(() => bell.ring(), TypeError);
      // A live process with another start time: a pid the system reused.
      writeReceiver(bell.name, victim.process.pid, start + 1, 12);
      assert.equal(bell.ring(), false);
      // pid 0 (kill(0, sig) would signal our whole group) and pid -1 bits.
      writeReceiver(bell.name, 0, 0, 12);
      assert.equal(bell.ring(), false);
      writeReceiver(bell.name, 0xff_ffff, 0, 12);
      assert.equal(bell.ring(), false);
      // The victim with its true start time and SIGUSR2, which it does not catch (its
      // default action is death): not a listener.
      writeReceiver(bell.name, victim.process.pid, start, 12);
      assert.equal(bell.ring(), false);
      // This process itself, which does not listen.
      writeReceiver(bell.name, Deno.pid, processStartTime(Deno.pid)!, 12);
      assert.equal(bell.ring(), false);
      // Another user's live process, with its true start time.
      writeReceiver(bell.name, foreign.process.pid, processStartTime(foreign.process.pid)!, 12);
      assert.equal(bell.ring(), false);
      await delay(100);
      assert.equal(victim.exited(), false, "the victim was signalled");
      assert.equal(foreign.exited(), false, "the other user's process was signalled");
      assert.equal(bell.rung, 7, "every ring is still counted");
    } finally {
      victim.process.kill("SIGKILL");
      foreign.process.kill("SIGKILL");
      await victim.process.status;
      await foreign.process.status;
      bell.unlink();
    }
  },
);

ipcTest("Doorbell: a ringer opened with another signal than the listener's is refused", () => {
  using bell = Doorbell.create({ signal: "SIGURG" });
  try {
    using _listening = bell.listen();
    using wrong = Doorbell.open({ name: bell.name });
    assert.throws(() => wrong.ring(), /listens on signal 23/);
    using right = Doorbell.open({ name: bell.name, signal: "SIGURG" });
    assert.equal(right.ring(), true);
  } finally {
    bell.unlink();
  }
});

ipcTest(
  "Doorbell.ring() does not signal a process that listens on the signal but has another start time (a reused pid)",
  async () => {
    using bell = Doorbell.create();
    // A process that catches SIGUSR2 (and says so when it gets one): only its start time
    // tells it apart from the listener the shared memory names.
    await using listener = new Child("signal_child.ts", ["listen", "SIGUSR2"]);
    try {
      assert.equal(await listener.line(), "ready");
      const start = processStartTime(listener.process.pid)!;
      writeReceiver(bell.name, listener.process.pid, start + 1, 12);
      assert.equal(bell.ring(), false);
      const got = await Promise.race([listener.line(), delay(200).then(() => "nothing")]);
      assert.equal(got, "nothing", "the process was signalled");
    } finally {
      bell.unlink();
    }
  },
);

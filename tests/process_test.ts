// Process identity: a lock holder is known by pid AND start time, so neither a zombie
// nor a process that got a dead holder's pid keeps the holder's locks.
import assert from "node:assert/strict";
import {
  currentProcessToken,
  HOLDER_RECHECK_MS,
  PidLock,
  processAlive,
  processExists,
  processStartTime,
  processToken,
  tokenParts,
} from "../lib/_process.ts";
import { delay } from "./_helpers.ts";

// `sh` starts `sleep 0.2` in the background and then becomes `sleep 10`, which never
// waits for it: once it exits, the child stays a zombie until the parent dies. The
// callback gets its pid and the start time read while it is a zombie.
async function withZombie(
  fn: (zombie: number, start: number) => Promise<void> | void,
): Promise<void> {
  const parent = new Deno.Command("sh", {
    args: ["-c", "sleep 0.2 & echo $!; exec sleep 10"],
    stdout: "piped",
  }).spawn();
  try {
    const reader = parent.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const zombie = Number((await reader.read()).value!.trim());
    reader.releaseLock();
    for (let i = 0; i < 500; i++) {
      const stat = Deno.readTextFileSync(`/proc/${zombie}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] === "Z") return await fn(zombie, Number(fields[19]));
      await delay(10);
    }
    throw new Error(`process ${zombie} never became a zombie`);
  } finally {
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel().catch(() => {});
  }
}

Deno.test("a zombie process counts as dead", async () => {
  await withZombie((zombie) => {
    assert.equal(processExists(zombie), false);
    assert.equal(processStartTime(zombie), undefined);
  });
});

Deno.test("ids that kill(2) reads as groups or everyone are never alive", () => {
  for (const id of [0, -1, -Deno.pid, 1.5, NaN, 2 ** 31]) {
    assert.equal(processExists(id), false, `${id}`);
    assert.equal(processAlive(id, 0), false, `${id}`);
  }
});

Deno.test("a live process is alive only with its own start time (a reused pid is not)", () => {
  const start = processStartTime(Deno.pid)!;
  assert.ok(start > 0);
  assert.equal(processAlive(Deno.pid, start), true);
  assert.equal(processAlive(Deno.pid, start + 1), false);
  const parent = Deno.ppid;
  assert.equal(processAlive(parent, processStartTime(parent)!), true);
  assert.equal(processAlive(parent, processStartTime(parent)! - 1), false);
});

Deno.test("a process token keeps the pid and the start time's low 32 bits", () => {
  const token = processToken(4_000_000, 2 ** 33 + 5);
  assert.deepEqual(tokenParts(token), { pid: 4_000_000, startTime: 5 });
  assert.deepEqual(tokenParts(currentProcessToken()).pid, Deno.pid);
  assert.notEqual(currentProcessToken(), 0n);
});

Deno.test("PidLock is taken over from a dead holder, a zombie or a reused pid, never from a live one", async () => {
  const words = new BigInt64Array(1);
  const lock = new PidLock(words, 0);
  const other = new PidLock(words, 0);
  const parent = Deno.ppid;
  const parentStart = processStartTime(parent)!;

  // A live holder keeps it.
  words[0] = processToken(parent, parentStart);
  assert.equal(lock.recoverFromDeadHolder(), false);
  assert.equal(lock.tryAcquire(), false);
  assert.equal(lock.holder(), parent);

  // The same pid with another start time: a process that got a dead holder's pid.
  words[0] = processToken(parent, parentStart + 1);
  assert.equal(lock.recoverFromDeadHolder(), true);
  assert.equal(lock.tryAcquire(), true);
  assert.equal(other.tryAcquire(), false, "one process, one lock: never twice");
  lock.release();

  // A holder that exited.
  const child = new Deno.Command("true").spawn();
  const start = processStartTime(child.pid) ?? 0;
  await child.status;
  words[0] = processToken(child.pid, start);
  assert.equal(lock.recoverFromDeadHolder(), true);

  // A holder found alive that died since: looked up again once HOLDER_RECHECK_MS passed.
  const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    words[0] = processToken(sleeper.pid, processStartTime(sleeper.pid)!);
    assert.equal(lock.recoverFromDeadHolder(), false);
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
  await delay(HOLDER_RECHECK_MS + 1);
  assert.equal(lock.recoverFromDeadHolder(), true);

  // A zombie holder.
  await withZombie((zombie, start) => {
    // Its true start time: only being a zombie makes it dead.
    words[0] = processToken(zombie, start);
    assert.equal(lock.recoverFromDeadHolder(), true);
  });
  assert.equal(lock.held(), false);
});

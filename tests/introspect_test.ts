// listObjects / cleanupDead and the `ipc` command against real processes: children that
// create objects of every kind and are SIGKILLed, a live process using one of them, and
// `ipc clean` run as a process of its own. Only objects these tests create are asserted
// about (other objects of the machine may be listed too).
import assert from "node:assert/strict";
import {
  cleanupDead,
  inspectObject,
  type IpcObject,
  listObjects,
  MessageRing,
  NamedSemaphore,
  NotFoundError,
  PosixMessageQueue,
  SharedMemory,
} from "../mod.ts";
import { currentStartTime } from "../lib/_process.ts";
import { Child, ipcTest, testName } from "./_helpers.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;

async function ipc(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function namesWith(prefixes: string[]): IpcObject[] {
  return listObjects().filter((o) => prefixes.some((p) => o.name.startsWith(p)));
}

// Removes whatever is left under these prefixes (after a failure): the children are dead
// by then, so cleanupDead can, and anything else is unlinked by name.
function removeAll(prefixes: string[]): void {
  for (const o of namesWith(prefixes)) {
    try {
      SharedMemory.unlink(o.name);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }
}

async function killed(child: Child): Promise<void> {
  child.process.kill("SIGKILL");
  await child.status();
}

ipcTest(
  "ipc clean removes exactly the objects of SIGKILLed children, and an object a live process uses survives",
  async () => {
    const [a, b] = [testName("life-a"), testName("life-b")];
    const [nsA, nsB] = [
      `a${crypto.randomUUID().slice(0, 8)}`,
      `b${crypto.randomUUID().slice(0, 8)}`,
    ];
    const prefixes = [a, b, `/deno-ipc-dc.${nsA}.`, `/deno-ipc-dc.${nsB}.`];
    await using creatorA = new Child("lifecycle_child.ts", ["create", a, nsA]);
    await using creatorB = new Child("lifecycle_child.ts", ["create", b, nsB]);
    try {
      const [ringA] = JSON.parse(await creatorA.line()) as string[];
      await creatorB.line();
      await using user = new Child("lifecycle_child.ts", ["open", ringA]);
      await user.line();
      const ofA = namesWith([a, `/deno-ipc-dc.${nsA}.`]);
      const kinds = new Set(ofA.map((o) => o.kind));
      for (
        const kind of [
          "ring",
          "mailbox",
          "bounded-buffer",
          "semaphore-bounded-buffer",
          "doorbell",
          "direct-registry",
          "direct-link",
        ]
      ) assert.ok(kinds.has(kind), `child made a ${kind}`);
      assert.ok(ofA.every((o) => o.state === "live"), "all live before the kill");

      await killed(creatorA);
      const ring = inspectObject(ringA);
      assert.equal(ring.creator?.alive, false);
      assert.deepEqual(
        ring.attached.map((p) => p.alive).sort(),
        [false, true],
        "the dead creator and the live user are both attached",
      );
      assert.equal(ring.state, "live");

      const cleaned = await ipc(
        "clean",
        "--yes",
        "--json",
        ...prefixes.flatMap((p) => ["--match", p]),
      );
      assert.equal(cleaned.code, 0, cleaned.stderr);
      const removed = (JSON.parse(cleaned.stdout).removed as { name: string }[]).map((e) => e.name);
      const expected = ofA.map((o) => o.name).filter((n) => n !== ringA);
      assert.deepEqual(removed.sort(), expected.sort());
      const left = namesWith(prefixes).map((o) => o.name);
      assert.ok(left.includes(ringA), "the ring a live process uses survives");
      for (const name of expected) assert.ok(!left.includes(name), `${name} removed`);
      assert.ok(left.filter((n) => n.startsWith(b)).length >= 5, "the live child's objects stay");

      await killed(user);
      await killed(creatorB);
      const rest = cleanupDead({ names: namesWith(prefixes).map((o) => o.name) });
      assert.ok(rest.removed.some((e) => e.name === ringA));
      assert.deepEqual(namesWith(prefixes), []);
    } finally {
      await killed(creatorA).catch(() => {});
      await killed(creatorB).catch(() => {});
      removeAll(prefixes);
    }
  },
);

ipcTest(
  "ipc list and inspect show a dead participant; exit codes and one-line errors",
  async () => {
    using ring = MessageRing.create({ name: testName("life-list"), capacity: 1024 });
    try {
      await using user = new Child("lifecycle_child.ts", ["open", ring.name]);
      await user.line();
      await killed(user);
      const listed = await ipc("list", "--kind", "ring", "--match", ring.name);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /^KIND\s+NAME\s+SIZE\s+CREATOR\s+STATE\s+ATTACHED\s+DEPTH/);
      assert.match(
        listed.stdout,
        new RegExp(`ring\\s+${ring.name}\\s+\\d+\\s+${Deno.pid}\\s+live\\s+`),
      );
      assert.match(listed.stdout, /\d+\(dead\)/);
      const json = await ipc("inspect", ring.name, "--json");
      assert.equal(json.code, 0, json.stderr);
      const report = JSON.parse(json.stdout) as IpcObject;
      assert.equal(report.kind, "ring");
      assert.equal(report.details.capacity, 1024);
      assert.equal(report.attached.filter((p) => !p.alive).length, 1);

      const missing = await ipc("inspect", "/deno-ipc-test-no-such-object");
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr.trim().split("\n").length, 1);
      assert.match(missing.stderr, /^ipc: No IPC object named/);
      const usage = await ipc("list", "--bogus");
      assert.equal(usage.code, 2);
      assert.equal(usage.stderr.trim().split("\n").length, 1);
      assert.equal((await ipc("frobnicate")).code, 2);
      assert.equal((await ipc("list", "--kind", "rings")).code, 2);
      assert.equal((await ipc("inspect")).code, 2);
      const help = await ipc("help");
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Exit status: 0 success, 1 error, 2 usage error/);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "ipc watch prints one line of rates per interval when stdout is not a terminal",
  async () => {
    using ring = MessageRing.create({ name: testName("life-watch"), capacity: 4096 });
    try {
      using other = MessageRing.open({ name: ring.name });
      const watching = ipc("watch", ring.name, "--interval", "100", "--count", "3");
      const until = Date.now() + 30_000;
      let done = false;
      watching.finally(() => done = true);
      while (!done && Date.now() < until) {
        for (let i = 0; i < 64; i++) {
          ring.trySend(new Uint8Array(32));
          other.tryReceive();
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const output = await watching;
      assert.equal(output.code, 0, output.stderr);
      const lines = output.stdout.trim().split("\n");
      assert.equal(lines.length, 3);
      for (const line of lines) {
        assert.match(
          line,
          /live {2}sent \d+\/s {2}received \d+\/s .*depth \d+ bytes {2}attached 2$/,
        );
      }
      assert.ok(lines.some((line) => !/ sent 0\/s/.test(line)), "some samples saw traffic");
      assert.equal((await ipc("watch", ring.name, "--interval", "1")).code, 2);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "bad arguments of listObjects, inspectObject and cleanupDead are TypeErrors naming them",
  () => {
    assert.throws(() => listObjects(null as never), /Invalid list options/);
    assert.throws(() => listObjects({ kinds: "ring" as never }), /option kinds/);
    assert.throws(() => inspectObject(42 as never), /Invalid object name/);
    assert.throws(() => inspectObject(""), /Invalid object name/);
    assert.throws(() => cleanupDead(7 as never), /Invalid cleanup options/);
    assert.throws(() => cleanupDead({ dryRun: "yes" as never }), /option dryRun/);
    assert.throws(() => cleanupDead({ names: [1] as never }), /option names/);
    assert.throws(() => cleanupDead({ kinds: {} as never }), /option kinds/);
  },
);

ipcTest(
  "attachment table: handles beyond its 24 slots are counted, and slots of dead processes are taken again",
  () => {
    const name = testName("life-slots");
    const handles = [MessageRing.create({ name, capacity: 256 })];
    try {
      for (let i = 0; i < 29; i++) handles.push(MessageRing.open({ name }));
      let object = inspectObject(name);
      assert.equal(object.attached.length, 24);
      assert.ok(object.attached.every((p) => p.pid === Deno.pid && p.alive));
      assert.equal(object.untracked, 6);
      for (const handle of handles.splice(0)) handle.close();
      object = inspectObject(name);
      assert.deepEqual([object.attached.length, object.untracked], [0, 0]);
      // Every slot held by a dead process (pid 1 with another start time: a reused pid).
      {
        using shm = SharedMemory.open({ name });
        const view = new DataView(shm.buffer);
        const life = view.getInt32(24, true);
        for (let slot = 0; slot < 24; slot++) {
          view.setBigInt64(life + 64 + slot * 8, (0x7fff_0000n << 32n) | 1n, true);
        }
      }
      assert.equal(inspectObject(name).attached.filter((p) => !p.alive).length, 24);
      handles.push(MessageRing.open({ name }));
      object = inspectObject(name);
      assert.equal(object.attached.filter((p) => p.alive && p.pid === Deno.pid).length, 1);
      assert.equal(object.untracked, 0);
    } finally {
      for (const handle of handles) handle.close();
      MessageRing.unlink(name);
    }
  },
);

ipcTest(
  "ipc list, inspect, clean and errors print control characters of a hostile name escaped: one row per object, no terminal escapes",
  async () => {
    const prefix = testName("life-ctl");
    // A file another process put in /dev/shm: a newline and a terminal escape in its name.
    const name = `${prefix}\nfake\x1b[2J\x9b`;
    Deno.writeFileSync(`/dev/shm${name}`, new Uint8Array(16), { mode: 0o600 });
    // And the temporary of a create whose creator died (pid 1 with another start time).
    const temporary = `/.deno-ipc-init.1.${currentStartTime() + 12345}.${prefix.slice(1)}`;
    Deno.writeFileSync(`/dev/shm${temporary}\x1b[2J`, new Uint8Array(16), { mode: 0o600 });
    try {
      const outputs = [
        await ipc("list", "--match", prefix),
        await ipc("inspect", name),
        await ipc("inspect", `${name}-missing`),
        await ipc("clean", "--dry-run", "--match", temporary),
      ];
      for (const output of outputs) {
        // deno-lint-ignore no-control-regex
        assert.doesNotMatch(output.stdout + output.stderr, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
      }
      assert.equal(outputs[0].code, 0, outputs[0].stderr);
      assert.equal(outputs[0].stdout.trim().split("\n").length, 2, "header and one row");
      assert.match(outputs[0].stdout, /fake\\x1b\[2J\\x9b/);
      assert.equal(outputs[1].code, 0, outputs[1].stderr);
      assert.equal(outputs[2].code, 1);
      assert.equal(outputs[2].stderr.trim().split("\n").length, 1);
      assert.equal(outputs[3].code, 0, outputs[3].stderr);
      assert.match(outputs[3].stdout, /^would remove temporary .*\\x1b\[2J: half-created/);
      const json = JSON.parse((await ipc("list", "--match", prefix, "--json")).stdout);
      assert.deepEqual(json.map((o: IpcObject) => o.name), [name], "--json keeps the name");
    } finally {
      Deno.removeSync(`/dev/shm${name}`);
      Deno.removeSync(`/dev/shm${temporary}\x1b[2J`);
    }
  },
);

ipcTest(
  "ipc clean off a terminal without --yes removes nothing, exits 2, and keeps stdout for --json",
  async () => {
    const prefix = testName("life-noyes");
    const temporary = `/.deno-ipc-init.1.${currentStartTime() + 12345}.${prefix.slice(1)}`;
    Deno.writeFileSync(`/dev/shm${temporary}`, new Uint8Array(16), { mode: 0o600 });
    try {
      for (const json of [[], ["--json"]]) {
        const output = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", cli, "clean", ...json, "--match", temporary],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const [stdout, stderr] = [output.stdout, output.stderr].map((b) =>
          new TextDecoder().decode(b)
        );
        assert.equal(output.code, 2, stderr);
        assert.equal(stdout, "", "the refused plan is part of the error, on stderr");
        assert.match(stderr, /would remove temporary .*half-created/);
        assert.match(stderr, /^ipc: not a terminal: pass --yes/m);
        assert.ok(Deno.statSync(`/dev/shm${temporary}`).isFile, "nothing removed");
      }
    } finally {
      Deno.removeSync(`/dev/shm${temporary}`);
    }
  },
);

// Waits until the process catches SIGINT (its listener is installed).
async function catchesInterrupt(pid: number): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    const caught = /\nSigCgt:\s+([0-9a-f]+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    if (caught && (BigInt(`0x${caught[1]}`) & 2n) !== 0n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`process ${pid} never caught SIGINT`);
}

ipcTest("ipc watch stops at Ctrl-C without waiting for the rest of its interval", async () => {
  using ring = MessageRing.create({ name: testName("life-watch-int"), capacity: 1024 });
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", cli, "watch", ring.name, "--interval", "3600000"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = child.output();
    try {
      await catchesInterrupt(child.pid);
      await new Promise((resolve) => setTimeout(resolve, 50)); // in its sleep now
      child.kill("SIGINT");
      // An hour's interval: a watch that sleeps it out fails here (after a minute).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const result = await Promise.race([
        output,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("still watching a minute after Ctrl-C")),
            60_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await output;
    }
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "inspectObject and ipc inspect find a ring whose name a POSIX queue or a named semaphore also has",
  async () => {
    const mounted = Deno.readTextFileSync("/proc/self/mounts").includes(" /dev/mqueue mqueue ");
    const name = testName("life-same-name");
    using ring = MessageRing.create({ name, capacity: 1024 });
    // POSIX names of different kinds live in separate namespaces: all may be "/name".
    using semaphore = NamedSemaphore.create({ name });
    const queue = mounted ? PosixMessageQueue.create({ name }) : undefined;
    try {
      assert.equal(inspectObject(name).kind, "ring");
      const inspected = await ipc("inspect", name);
      assert.equal(inspected.code, 0, inspected.stderr);
      assert.match(inspected.stdout, /^ring /);
    } finally {
      queue?.close();
      if (queue) PosixMessageQueue.unlink(name);
      semaphore.close();
      NamedSemaphore.unlink(name);
      ring.unlink();
    }
  },
);

import assert from "node:assert/strict";
import {
  AlreadyExistsError,
  Bootstrap,
  DeadNameError,
  NotFoundError,
  PermissionDeniedError,
  ReceiveRight,
  TimedOutError,
} from "../mod.ts";
import { Child, delay, ipcTest } from "./_helpers.ts";

function alive(pid: number): boolean {
  try {
    return !Deno.readTextFileSync(`/proc/${pid}/status`).includes("State:\tZ");
  } catch {
    return false;
  }
}

async function waitForExit(pid: number): Promise<void> {
  for (let i = 0; i < 400 && alive(pid); i++) await delay(25);
  assert.equal(alive(pid), false, `bootstrap server ${pid} is still running`);
  await delay(50); // let this process reap it
}

/** A fresh 0700 bootstrap directory, removed (with whatever is left) afterwards. */
async function withDirectory(fn: (directory: string) => Promise<void>): Promise<void> {
  const directory = await Deno.makeTempDir({ prefix: "deno-ipc-test-mach-" });
  try {
    await fn(directory);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

ipcTest(
  "Bootstrap: started on demand in a 0700 directory; check in, look up, send; exits when idle and removes its socket",
  async () => {
    await withDirectory(async (directory) => {
      const bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
      const pid = bootstrap.serverPid;
      try {
        assert.notEqual(pid, Deno.pid);
        assert.equal(Deno.statSync(directory).mode! & 0o777, 0o700);
        assert.equal(Deno.lstatSync(`${directory}/bootstrap.sock`).mode! & 0o777, 0o600);
        using service = await bootstrap.checkIn("com.example.echo");
        using client = await bootstrap.lookUp("com.example.echo");
        await client.send({ id: 5 });
        using message = await service.receive({ timeout: 5000 });
        assert.equal(message.id, 5);
        // A second connection shares the same server.
        using again = await Bootstrap.connect({ directory });
        assert.equal(again.serverPid, pid);
      } finally {
        bootstrap.close();
      }
      await waitForExit(pid);
      assert.deepEqual(
        Array.from(Deno.readDirSync(directory), (entry) => entry.name).filter((name) =>
          name !== "start.lock"
        ),
        [],
      );
    });
  },
);

ipcTest("Bootstrap: a socket file left by a dead server is replaced by a new server", async () => {
  await withDirectory(async (directory) => {
    // A socket bound and never listened on: what a killed server leaves.
    const stale = Deno.listen({ transport: "unix", path: `${directory}/bootstrap.sock` });
    const staleFile = Deno.lstatSync(`${directory}/bootstrap.sock`);
    // Deno.listen's close removes the file; keep it by renaming around the close.
    Deno.renameSync(`${directory}/bootstrap.sock`, `${directory}/kept.sock`);
    stale.close();
    Deno.renameSync(`${directory}/kept.sock`, `${directory}/bootstrap.sock`);
    assert.ok(staleFile.isSocket);
    using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
    const pid = bootstrap.serverPid;
    using port = ReceiveRight.allocate();
    using send = port.makeSend();
    await bootstrap.register("registered", send);
    using looked = await bootstrap.lookUp("registered");
    await looked.send({ id: 9 });
    assert.equal((await port.receive({ timeout: 5000 })).id, 9);
    await assert.rejects(bootstrap.register("registered", send), AlreadyExistsError);
    bootstrap.close();
    port.close();
    await waitForExit(pid);
  });
});

ipcTest(
  "Bootstrap: when the service's process dies, look-ups fail saying so and clients hold dead names; a restarted service checks in again",
  async () => {
    await withDirectory(async (directory) => {
      using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
      const pid = bootstrap.serverPid;
      using reply = ReceiveRight.allocate({ label: "client" });
      {
        await using service = new Child("mach_child.ts", ["service", directory, "echo"]);
        assert.equal(await service.line(), "ready");
        using echo = await bootstrap.lookUp("echo");
        await echo.send({ id: 1, reply: { makeSendOnce: reply } });
        assert.equal((await reply.receive({ timeout: 5000 })).id, 1001);
        service.process.kill("SIGKILL");
        await service.status();
        await assert.rejects(echo.send({ id: 2 }), DeadNameError);
        assert.equal(echo.dead, true);
        // The server notices within its poll slice.
        let error: unknown;
        for (let i = 0; i < 100; i++) {
          try {
            (await bootstrap.lookUp("echo")).close();
          } catch (caught) {
            error = caught;
            break;
          }
          await delay(20);
        }
        assert.ok(error instanceof NotFoundError);
        assert.match(error.message, /died/);
      }
      await using restarted = new Child("mach_child.ts", ["service", directory, "echo"]);
      assert.equal(await restarted.line(), "ready");
      using echo = await bootstrap.lookUp("echo");
      await echo.send({ id: 3, reply: { makeSendOnce: reply } });
      assert.equal((await reply.receive({ timeout: 5000 })).id, 1003);
      await assert.rejects(bootstrap.checkIn("echo"), AlreadyExistsError);
      restarted.process.kill("SIGKILL");
      await restarted.status();
      bootstrap.close();
      await waitForExit(pid);
    });
  },
);

ipcTest("Bootstrap: bad names and directories are refused", async () => {
  await withDirectory(async (directory) => {
    Deno.chmodSync(directory, 0o750);
    await assert.rejects(Bootstrap.connect({ directory }), PermissionDeniedError);
    Deno.chmodSync(directory, 0o700);
    await assert.rejects(Bootstrap.connect({ directory, idleMs: -1 }), RangeError);
    await assert.rejects(Bootstrap.connect({ directory: 5 as never }), TypeError);
    using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
    const pid = bootstrap.serverPid;
    await assert.rejects(bootstrap.lookUp("x".repeat(129)), RangeError);
    await assert.rejects(bootstrap.lookUp("é".repeat(65)), RangeError);
    await assert.rejects(bootstrap.lookUp(""), TypeError);
    await assert.rejects(bootstrap.lookUp("a\0b"), TypeError);
    await assert.rejects(bootstrap.lookUp(7 as never), TypeError);
    await assert.rejects(bootstrap.lookUp("x".repeat(128)), NotFoundError);
    bootstrap.close();
    await assert.rejects(bootstrap.lookUp("x"), /closed/);
    await waitForExit(pid);
  });
});

ipcTest(
  "Bootstrap: a killed bootstrap server loses only its names: rights keep working, the next connect starts a new server",
  async () => {
    await withDirectory(async (directory) => {
      const first = await Bootstrap.connect({ directory, idleMs: 100 });
      const oldPid = first.serverPid;
      using service = await first.checkIn("survivor");
      using client = await first.lookUp("survivor");
      Deno.kill(oldPid, "SIGKILL");
      await waitForExit(oldPid);
      await assert.rejects(first.lookUp("survivor"), /went away/);
      first.close();
      await client.send({ id: 1 });
      assert.equal((await service.receive({ timeout: 5000 })).id, 1);
      using second = await Bootstrap.connect({ directory, idleMs: 100 });
      const newPid = second.serverPid;
      assert.notEqual(newPid, oldPid);
      await assert.rejects(second.lookUp("survivor"), NotFoundError);
      using again = await second.checkIn("survivor");
      using fresh = await second.lookUp("survivor");
      await fresh.send({ id: 2 });
      assert.equal((await again.receive({ timeout: 5000 })).id, 2);
      second.close();
      again.close();
      await waitForExit(newPid);
    });
  },
);

ipcTest(
  "Bootstrap: a request that timed out leaves its late reply behind: the next request gets its own answer, not that right",
  async () => {
    await withDirectory(async (directory) => {
      let serverPid = 0;
      {
        using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
        serverPid = bootstrap.serverPid;
        using first = await bootstrap.checkIn("first");
        using second = await bootstrap.checkIn("second");
        let gaveUp = false;
        try {
          (await bootstrap.lookUp("first", { timeout: 0 })).close();
        } catch (error) {
          assert.ok(error instanceof TimedOutError, String(error));
          gaveUp = true;
        }
        if (gaveUp) await delay(300); // the server answers the abandoned request meanwhile
        using toSecond = await bootstrap.lookUp("second", { timeout: 5000 });
        await toSecond.send({ id: 2 });
        using message = await second.receive({ timeout: 5000 });
        assert.equal(message.id, 2);
        assert.equal(first.tryReceive(), undefined);
      }
      await waitForExit(serverPid);
    });
  },
);

ipcTest(
  "Bootstrap: a server out of descriptors answers a check-in with an error and keeps serving its names",
  async () => {
    await withDirectory(async (directory) => {
      let serverPid = 0;
      {
        using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
        serverPid = bootstrap.serverPid;
        using kept = await bootstrap.checkIn("kept");
        // Starve the server of descriptors: none may be numbered at or above the third
        // free number, and two more connections fill the two free ones below it.
        const numbers = () =>
          new Set(Array.from(Deno.readDirSync(`/proc/${serverPid}/fd`), (e) => Number(e.name)));
        const taken = numbers();
        const free: number[] = [];
        for (let fd = 0; free.length < 3; fd++) if (!taken.has(fd)) free.push(fd);
        const limit = await new Deno.Command("prlimit", {
          args: [`--pid=${serverPid}`, `--nofile=${free[2]}:${free[2]}`],
        }).output();
        assert.ok(limit.success, new TextDecoder().decode(limit.stderr));
        const fillers: Bootstrap[] = [];
        try {
          const full = () => [...numbers()].filter((fd) => fd < free[2]).length >= free[2];
          for (let i = 0; i < 16 && !full(); i++) {
            fillers.push(await Bootstrap.connect({ directory }));
            await delay(20);
          }
          assert.ok(full(), "the server's descriptor table did not fill");
          await assert.rejects(bootstrap.checkIn("starved", { timeout: 5000 }), (error) => {
            assert.ok(!(error instanceof TypeError), String(error));
            assert.match(String(error), /EMFILE|descriptor/i);
            return true;
          });
          assert.ok(alive(serverPid), "the bootstrap server died");
        } finally {
          for (const filler of fillers) filler.close();
        }
        using client = await bootstrap.lookUp("kept", { timeout: 5000 });
        await client.send({ id: 9 });
        using message = await kept.receive({ timeout: 5000 });
        assert.equal(message.id, 9);
      }
      await waitForExit(serverPid);
    });
  },
);

ipcTest(
  "Bootstrap: connecting while the last server exits for idleness reaches a working server",
  async () => {
    await withDirectory(async (directory) => {
      const pids = new Set<number>();
      for (let i = 0; i < 30; i++) {
        using bootstrap = await Bootstrap.connect({ directory, idleMs: 0 });
        pids.add(bootstrap.serverPid);
        await assert.rejects(bootstrap.lookUp("nothing", { timeout: 5000 }), NotFoundError);
      }
      for (const pid of pids) await waitForExit(pid);
    });
  },
);

ipcTest(
  "Bootstrap: a service name that is not well-formed Unicode is a TypeError (two such names would meet as U+FFFD)",
  async () => {
    await withDirectory(async (directory) => {
      let serverPid = 0;
      {
        using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
        serverPid = bootstrap.serverPid;
        const names = ["a\uD800", "a\uDC00"];
        const held: Disposable[] = [];
        try {
          for (const name of names) {
            await assert.rejects(
              (async () => held.push(await bootstrap.checkIn(name)))(),
              TypeError,
            );
            await assert.rejects(
              (async () => held.push(await bootstrap.lookUp(name)))(),
              TypeError,
            );
          }
        } finally {
          for (const each of held) each[Symbol.dispose]();
        }
      }
      await waitForExit(serverPid);
    });
  },
);

ipcTest(
  "Bootstrap: a directory too long for a socket path is a RangeError before anything is created",
  async () => {
    await withDirectory(async (parent) => {
      const directory = `${parent}/${"d".repeat(120)}`;
      await assert.rejects(Bootstrap.connect({ directory }), RangeError);
      assert.deepEqual(Array.from(Deno.readDirSync(parent)), []);
    });
  },
);

ipcTest(
  "Bootstrap: an empty directory, or one containing NUL, is a TypeError before anything is created",
  async () => {
    await withDirectory(async (parent) => {
      await assert.rejects(Bootstrap.connect({ directory: "" }), TypeError);
      await assert.rejects(Bootstrap.connect({ directory: `${parent}/a\0b` }), TypeError);
      assert.deepEqual(Array.from(Deno.readDirSync(parent)), []);
    });
  },
);

// FIFOs and Unix socket files the library made, as listObjects, cleanupDead and `ipc clean`
// (run as a process of its own) see them through the endpoint registry
// (lib/_endpoints.ts), and hostile registry records.
import assert from "node:assert/strict";
import { cleanupDead, Fifo, FramedServer, type IpcObject, listObjects } from "../mod.ts";
import { recordName, registryDirectory } from "../lib/_endpoints.ts";
import { processToken } from "../lib/_process.ts";
import { Child, ipcTest } from "./_helpers.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;

async function ipc(...args: string[]): Promise<{ code: number; stdout: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return { code: output.code, stdout: new TextDecoder().decode(output.stdout) };
}

function under(directory: string): IpcObject[] {
  return listObjects({ kinds: ["fifo", "unix-socket"], scanMappings: false })
    .filter((o) => o.name.startsWith(`${directory}/`));
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

ipcTest(
  "a FIFO and a Unix socket made by a SIGKILLed child are listed with a dead creator and removed by `ipc clean`; a live child's survive",
  async () => {
    const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-endpoints-" });
    const dead = `${directory}/dead`;
    const live = `${directory}/live`;
    Deno.mkdirSync(dead);
    Deno.mkdirSync(live);
    const killed = new Child("endpoint_child.ts", [dead]);
    const survivor = new Child("endpoint_child.ts", [live]);
    try {
      assert.equal(await killed.line(), "ready");
      assert.equal(await survivor.line(), "ready");
      const before = under(directory);
      assert.deepEqual(
        before.map((o) => [o.kind, o.name, o.state, o.creator?.alive]),
        [
          ["fifo", `${dead}/fifo`, "live", true],
          ["fifo", `${live}/fifo`, "live", true],
          ["unix-socket", `${dead}/socket`, "live", true],
          ["unix-socket", `${live}/socket`, "live", true],
        ],
      );
      assert.equal(before[0].creator?.pid, killed.process.pid);
      killed.process.kill("SIGKILL");
      await killed.status();
      const after = under(directory);
      assert.deepEqual(
        after.map((o) => [o.name, o.state, o.creator?.pid, o.creator?.alive]),
        [
          [`${dead}/fifo`, "dead", killed.process.pid, false],
          [`${live}/fifo`, "live", survivor.process.pid, true],
          [`${dead}/socket`, "dead", killed.process.pid, false],
          [`${live}/socket`, "live", survivor.process.pid, true],
        ],
      );
      const { code, stdout } = await ipc("clean", "--yes", "--json", "--match", `${directory}/`);
      assert.equal(code, 0);
      const result = JSON.parse(stdout);
      assert.deepEqual(
        result.removed.map((e: { kind: string; name: string }) => [e.kind, e.name]).sort(),
        [["fifo", `${dead}/fifo`], ["unix-socket", `${dead}/socket`]],
      );
      assert.equal(exists(`${dead}/fifo`), false);
      assert.equal(exists(`${dead}/socket`), false);
      assert.equal(exists(`${live}/fifo`), true);
      assert.equal(exists(`${live}/socket`), true);
      assert.deepEqual(under(directory).map((o) => o.name), [`${live}/fifo`, `${live}/socket`]);
    } finally {
      await killed[Symbol.asyncDispose]();
      await survivor[Symbol.asyncDispose]();
      cleanupDead({ names: [`${live}/fifo`, `${live}/socket`], scanMappings: false });
      Deno.removeSync(directory, { recursive: true });
    }
  },
);

ipcTest(
  "a FIFO whose creator died but that a live process holds open is kept by cleanupDead",
  async () => {
    const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-endpoints-" });
    const child = new Child("endpoint_child.ts", [directory]);
    let held: Deno.FsFile | undefined;
    try {
      assert.equal(await child.line(), "ready");
      // O_RDWR on a FIFO does not wait for a peer (Linux).
      held = Deno.openSync(`${directory}/fifo`, { read: true, write: true });
      child.process.kill("SIGKILL");
      await child.status();
      const fifo = under(directory).find((o) => o.kind === "fifo")!;
      assert.equal(fifo.creator?.alive, false);
      assert.equal(fifo.state, "live");
      assert.deepEqual(fifo.attached, [{ pid: Deno.pid, alive: true }]);
      const result = cleanupDead({ names: [fifo.name], scanMappings: false });
      assert.deepEqual(result.removed, []);
      assert.equal(exists(fifo.name), true);
      held.close();
      held = undefined;
      const again = cleanupDead({ names: [fifo.name], scanMappings: false });
      assert.deepEqual(again.removed.map((e) => e.name), [fifo.name]);
      assert.equal(exists(fifo.name), false);
    } finally {
      held?.close();
      await child[Symbol.asyncDispose]();
      cleanupDead({ names: [`${directory}/fifo`, `${directory}/socket`], scanMappings: false });
      Deno.removeSync(directory, { recursive: true });
    }
  },
);

ipcTest("FIFOs and sockets this process makes and removes leave no record behind", () => {
  const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-endpoints-" });
  try {
    Fifo.create(`${directory}/fifo`);
    const server = FramedServer.listen({ transport: "unix", path: `${directory}/socket` });
    const files = () => {
      try {
        return [...Deno.readDirSync(registryDirectory())].map((e) => e.name);
      } catch {
        return [];
      }
    };
    assert.ok(files().includes(recordName(`${directory}/fifo`)));
    assert.ok(files().includes(recordName(`${directory}/socket`)));
    const listed = under(directory);
    assert.deepEqual(listed.map((o) => [o.kind, o.state, o.creator?.pid]), [
      ["fifo", "live", Deno.pid],
      ["unix-socket", "live", Deno.pid],
    ]);
    assert.equal(listed[1].details.bound, true);
    server.close();
    Fifo.unlink(`${directory}/fifo`);
    assert.ok(!files().includes(recordName(`${directory}/fifo`)));
    assert.ok(!files().includes(recordName(`${directory}/socket`)));
    assert.deepEqual(under(directory), []);
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});

ipcTest(
  "a FIFO removed without the library leaves no record once its creator exits",
  async () => {
    const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-endpoints-" });
    try {
      const { code } = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./children/endpoint_child.ts", import.meta.url).pathname,
          directory,
          "rm",
        ],
      }).output();
      assert.equal(code, 0);
      assert.equal(exists(`${registryDirectory()}/${recordName(`${directory}/fifo`)}`), false);
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
);

// A record as the library writes it, with a creator that is dead (this pid with another
// start time), for `path` as it is now (device and inode of whatever is there).
function hostileRecord(path: string, kind = "fifo"): string {
  let device = "1";
  let inode = "1";
  try {
    const info = Deno.lstatSync(path);
    device = String(info.dev);
    inode = String(info.ino);
  } catch { /* nothing there */ }
  return JSON.stringify({
    version: 1,
    kind,
    path,
    creator: processToken(Deno.pid, 1).toString(),
    pid: Deno.pid,
    uid: 0,
    created: Date.now(),
    device,
    inode,
  });
}

ipcTest(
  "hostile registry records (a regular file, a symlink, another user's FIFO, /etc/passwd, garbage, a huge file) never cause a removal or a crash",
  async () => {
    const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-test-endpoints-" });
    const registry = registryDirectory();
    // A FIFO of ours keeps the registry directory (and our hostile records) in place.
    Fifo.create(`${directory}/anchor`);
    const planted: string[] = [];
    const unique = crypto.randomUUID().slice(0, 8);
    const plant = (name: string, text: string | Uint8Array) => {
      const file = `${registry}/${name}`;
      if (typeof text === "string") Deno.writeTextFileSync(file, text);
      else Deno.writeFileSync(file, text);
      planted.push(file);
    };
    try {
      const regular = `${directory}/regular`;
      Deno.writeTextFileSync(regular, "precious");
      const link = `${directory}/link`;
      Deno.symlinkSync(`${directory}/anchor`, link);
      const foreign = `${directory}/foreign`;
      Fifo.create(foreign);
      Deno.chownSync(foreign, 65534, 65534);
      const passwd = Deno.lstatSync("/etc/passwd");
      plant(recordName(regular), hostileRecord(regular));
      plant(recordName(link), hostileRecord(link));
      plant(recordName(foreign), hostileRecord(foreign));
      plant(recordName("/etc/passwd"), hostileRecord("/etc/passwd"));
      plant(recordName(`${directory}/wrong-name`), hostileRecord(regular));
      plant(`0000000000garbage.json-${unique}`, "{not json");
      plant(`0000000000array.json-${unique}`, "[1, 2, 3]");
      plant(
        `0000000000fields.json-${unique}`,
        JSON.stringify({ version: 1, kind: "fifo", path: 7 }),
      );
      plant(`0000000000huge.json-${unique}`, new Uint8Array(1 << 20).fill(0x20));
      Deno.mkdirSync(`${registry}/0000000000directory.json-${unique}`);
      planted.push(`${registry}/0000000000directory.json-${unique}`);

      const objects = listObjects({ scanMappings: false });
      const byName = new Map(objects.map((o) => [o.name, o]));
      assert.equal(byName.get(foreign)?.state, "other-user");
      for (const path of [regular, link, "/etc/passwd"]) {
        assert.equal(byName.get(path)?.state, "dead", path);
        assert.match(byName.get(path)!.problem!, /^stale record/);
      }
      const corrupted = objects.filter((o) =>
        o.kind === "endpoint-record" && planted.includes(o.name)
      );
      assert.equal(corrupted.length, 6);
      assert.ok(corrupted.every((o) => o.state === "corrupted" && o.problem !== null));

      const names = [...planted, regular, link, foreign, "/etc/passwd"];
      cleanupDead({ names, scanMappings: false });
      assert.equal((await ipc("clean", "--yes", "--match", registry)).code, 0);
      assert.equal((await ipc("list", "--json")).code, 0);
      assert.equal(Deno.readTextFileSync(regular), "precious");
      assert.equal(Deno.lstatSync(link).isSymlink, true);
      assert.equal(Deno.lstatSync(foreign).uid, 65534);
      const passwdAfter = Deno.lstatSync("/etc/passwd");
      assert.equal(passwdAfter.ino, passwd.ino);
      assert.equal(passwdAfter.size, passwd.size);
      // The stale records themselves went; the unreadable ones are left (and reported).
      assert.equal(exists(`${registry}/${recordName(regular)}`), false);
      assert.equal(exists(`${registry}/0000000000huge.json-${unique}`), true);
    } finally {
      for (const file of planted) {
        try {
          Deno.removeSync(file, { recursive: true });
        } catch { /* a stale record the clean-up removed */ }
      }
      Fifo.unlink(`${directory}/anchor`);
      Deno.removeSync(directory, { recursive: true });
    }
  },
);

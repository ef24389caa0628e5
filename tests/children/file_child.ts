// Child process for file IPC tests. Prints "ready" once its handle is open.
//   append LOG WRITER COUNT SIZE [SEGMENT_SIZE]  appends COUNT records made by
//                            payload(WRITER, i, SIZE) (see file_payload.ts), starting a
//                            new segment past SEGMENT_SIZE bytes, then prints "done". With CUT=K:F in
//                            the environment, append number K writes only the fraction F
//                            of its bytes and the process SIGKILLs itself, inside the
//                            append, holding the lock.
//   lock PATH MODE           takes a lock on PATH (MODE shared or exclusive), prints
//                            "locked", then waits (60 s) to be killed
//   locked-add PATH FILE N   N times: lock PATH, read the u32 at 0 of mapped FILE, yield
//                            to the event loop, write it back plus one; prints "done"
//   map-write PATH TEXT      writes [u32 length | TEXT] into the mapped file and exits
//   map-read PATH            prints the text a map-write left there
import { FileLock, FileLog, MappedFile } from "../../mod.ts";
import { testHooks } from "../../lib/_file_log_format.ts";
import { payload } from "./file_payload.ts";

const [action, path, a, b, c, d] = Deno.args;
switch (action) {
  case "append": {
    const writer = Number(a);
    const count = Number(b);
    const size = Number(c);
    const cut = Deno.env.get("CUT");
    if (cut) {
      const [at, fraction] = cut.split(":").map(Number);
      let appends = 0;
      testHooks.cutAppend = (length) =>
        appends++ === at ? Math.max(1, Math.floor(length * fraction)) : undefined;
    }
    using log = FileLog.open(path, d ? { segmentSize: Number(d) } : {});
    console.log("ready");
    for (let i = 0; i < count; i++) await log.append(payload(writer, i, size), { timeout: 20_000 });
    console.log("done");
    break;
  }
  case "lock": {
    using lock = FileLock.open(path);
    using _held = await lock.lock({ shared: a === "shared", timeout: 10_000 });
    console.log("locked");
    await new Promise((resolve) => setTimeout(resolve, 60_000));
    break;
  }
  case "locked-add": {
    using lock = FileLock.open(path);
    using file = MappedFile.open(a);
    const counter = file.view(Uint32Array, 0, 1);
    console.log("ready");
    for (let i = Number(b); i > 0; i--) {
      using _held = await lock.lock({ timeout: 20_000 });
      const value = counter[0];
      await new Promise((resolve) => setTimeout(resolve, 0));
      counter[0] = value + 1;
    }
    console.log("done");
    break;
  }
  case "map-write": {
    using file = MappedFile.open(path);
    const bytes = new TextEncoder().encode(a);
    file.bytes.set(bytes, 4);
    file.view(Uint32Array, 0, 1)[0] = bytes.length;
    break;
  }
  case "map-read": {
    using file = MappedFile.open(path);
    const length = file.view(Uint32Array, 0, 1)[0];
    console.log(new TextDecoder().decode(file.bytes.subarray(4, 4 + length)));
    break;
  }
  default:
    throw new Error(`unknown action ${action}`);
}

// Child process for shared memory tests.
//   write NAME TEXT   opens NAME and writes TEXT as [u32 length | utf-8]
//   read NAME         opens NAME and prints the text written there
//   add NAME COUNT START   prints "ready", waits for semaphore START, then
//                          Atomics.add(counter at 0, 1) COUNT times
//   open-or-create NAME    openOrCreate(NAME, 4096); prints "created" or "opened"
import { NamedSemaphore, SharedMemory } from "../../mod.ts";

const [action, name, argument, start] = Deno.args;
if (action === "open-or-create") {
  using shm = SharedMemory.openOrCreate({ name, size: 4096 });
  Atomics.add(shm.view(Int32Array, 0, 1), 0, 1);
  console.log(shm.created ? "created" : "opened");
  Deno.exit(0);
}
using shm = SharedMemory.open({ name });
const header = shm.view(Uint32Array, 0, 1);
switch (action) {
  case "write": {
    const bytes = new TextEncoder().encode(argument);
    shm.bytes.set(bytes, 4);
    Atomics.store(header, 0, bytes.length);
    break;
  }
  case "read":
    console.log(new TextDecoder().decode(shm.bytes.subarray(4, 4 + Atomics.load(header, 0))));
    break;
  case "add": {
    using gate = NamedSemaphore.open({ name: start });
    console.log("ready");
    await gate.wait({ timeout: 10_000 });
    for (let i = Number(argument); i > 0; i--) Atomics.add(header, 0, 1);
    break;
  }
  default:
    throw new Error(`unknown action ${action}`);
}

// Child process for shared memory tests.
//   write NAME TEXT   opens NAME and writes TEXT as [u32 length | utf-8]
//   read NAME         opens NAME and prints the text written there
//   add NAME COUNT    Atomics.add(counter at 0, 1) COUNT times
import { SharedMemory } from "../../mod.ts";

const [action, name, argument] = Deno.args;
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
  case "add":
    for (let i = Number(argument); i > 0; i--) Atomics.add(header, 0, 1);
    break;
  default:
    throw new Error(`unknown action ${action}`);
}

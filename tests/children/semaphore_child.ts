// Child process for semaphore tests. Prints "ready" once its handle is open.
//   post NAME                  posts the named semaphore
//   wait NAME TIMEOUT_MS       waits; prints "acquired" or the error's name
//   post-unnamed SHM OFFSET    posts the unnamed semaphore at OFFSET of SHM
//   wait-unnamed SHM OFFSET    waits on it (10 s timeout); prints "acquired"
//   locked-add NAME SHM COUNT START  prints "ready", waits for semaphore START, then COUNT
//                              times: lock mutex NAME, read SHM[0], yield to the event
//                              loop, write it back plus one
import { Mutex, NamedSemaphore, SharedMemory, UnnamedSemaphore } from "../../mod.ts";

const [action, name, argument, count, start] = Deno.args;
switch (action) {
  case "post": {
    using sem = NamedSemaphore.open({ name });
    console.log("ready");
    sem.post();
    break;
  }
  case "wait": {
    using sem = NamedSemaphore.open({ name });
    console.log("ready");
    try {
      await sem.wait({ timeout: Number(argument) });
      console.log("acquired");
    } catch (error) {
      console.log((error as Error).name);
    }
    break;
  }
  case "post-unnamed":
  case "wait-unnamed": {
    using shm = SharedMemory.open({ name });
    using sem = UnnamedSemaphore.attach(shm, { byteOffset: Number(argument) });
    console.log("ready");
    if (action === "post-unnamed") sem.post();
    else {
      await sem.wait({ timeout: 10_000 });
      console.log("acquired");
    }
    break;
  }
  case "locked-add": {
    using mutex = Mutex.open({ name });
    using shm = SharedMemory.open({ name: argument });
    using gate = NamedSemaphore.open({ name: start });
    const counter = shm.view(Int32Array, 0, 1);
    console.log("ready");
    await gate.wait({ timeout: 10_000 });
    for (let i = Number(count); i > 0; i--) {
      using _held = await mutex.lock({ timeout: 10_000 });
      const seen = counter[0];
      // A real pause inside the critical section: without the lock, the other process
      // would read the same value meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 0));
      counter[0] = seen + 1;
    }
    break;
  }
  default:
    throw new Error(`unknown action ${action}`);
}

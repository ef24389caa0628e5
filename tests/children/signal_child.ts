// Child process for signal tests. Prints "ready" when set up.
//   listen SIGNAL          waits for SIGNAL, prints "got SIGNAL"
//   graceful SHM SEM       creates SHM and named semaphore SEM; on SIGTERM removes both,
//                          prints "cleaned up" and exits 0
//   idle                   no listener; sleeps until killed
//   group                  starts a process group, spawns two idle children in it, prints
//                          "pgid PID PID" and sleeps
//   doorbell NAME N        listens on doorbell NAME until N events arrived, then prints
//                          "events E signals S" (S: rings seen, E: events they reported)
import {
  Doorbell,
  NamedSemaphore,
  SharedMemory,
  type SignalName,
  startProcessGroup,
  waitForSignal,
} from "../../mod.ts";

const [action, first, second] = Deno.args;
const sleepForever = () => new Promise((resolve) => setTimeout(resolve, 60_000));

switch (action) {
  case "listen": {
    const arrived = waitForSignal(first as SignalName, { timeout: 10_000 });
    console.log("ready");
    await arrived;
    console.log(`got ${first}`);
    break;
  }
  case "graceful": {
    const shm = SharedMemory.create({ name: first, size: 4096 });
    const sem = NamedSemaphore.create({ name: second });
    const stop = waitForSignal("SIGTERM");
    console.log("ready");
    await stop;
    shm.close();
    shm.unlink();
    sem.close();
    sem.unlink();
    console.log("cleaned up");
    break;
  }
  case "idle":
    console.log("ready");
    await sleepForever();
    break;
  case "group": {
    const pgid = startProcessGroup();
    const children = [0, 1].map(() =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", import.meta.filename!, "idle"],
        stdout: "null",
      }).spawn()
    );
    console.log(`${pgid} ${children.map((child) => child.pid).join(" ")}`);
    await sleepForever();
    break;
  }
  case "doorbell": {
    using bell = Doorbell.open({ name: first });
    const target = Number(second);
    let events = 0;
    let signals = 0;
    using _listening = bell.listen((count) => {
      events += count;
      signals++;
    });
    console.log("ready");
    while (events < target) await bell.wait({ timeout: 10_000 });
    console.log(`events ${events} signals ${signals}`);
    break;
  }
  default:
    throw new Error(`unknown action ${action}`);
}

// Child process for the ownership tests: drops root privileges to the user `nobody`
// (uid and gid 65534) with setgid/setuid, then creates the objects named on the command
// line with the default mode 0600, as another local user squatting those names would.
//   SHM SEMAPHORE POSIX_QUEUE SYSV_KEY [SQUATTED_SHM]
// SQUATTED_SHM is made with mode 0666, as a squatter who wants to be opened would.
import { MessageQueue, NamedSemaphore, PosixMessageQueue, SharedMemory } from "../../mod.ts";

const NOBODY = 65534;
const privileges = Deno.dlopen("libc.so.6", {
  setgid: { parameters: ["u32"], result: "i32" },
  setuid: { parameters: ["u32"], result: "i32" },
  geteuid: { parameters: [], result: "u32" },
});
if (privileges.symbols.setgid(NOBODY) !== 0 || privileges.symbols.setuid(NOBODY) !== 0) {
  throw new Error("could not drop privileges to nobody (are the tests running as root?)");
}
if (privileges.symbols.geteuid() !== NOBODY) throw new Error("still not nobody");

const [shm, semaphore, posixQueue, key, squatted] = Deno.args;
SharedMemory.create({ name: shm, size: 4096 }).close();
NamedSemaphore.create({ name: semaphore, value: 1 }).close();
PosixMessageQueue.create({ name: posixQueue, maxMessages: 1, messageSize: 64 }).close();
MessageQueue.create({ key: Number(key) }).close();
if (squatted) {
  const region = SharedMemory.create({ name: squatted, size: 1 << 16, mode: 0o666 });
  region.close();
  Deno.chmodSync(`/dev/shm${squatted}`, 0o666); // past the umask
}
console.log("created");

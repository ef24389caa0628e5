// The textbook POSIX shared memory example (Silberschatz, OSC 10e, figures 3.16 and
// 3.17): a producer process creates the object "OS", sets its size (posix_fallocate,
// which also reserves the memory, where the textbook uses ftruncate),
// maps it and writes "Hello" then "World!"; a separate consumer process maps the same
// object, prints what it finds and removes it with shm_unlink.
//
//   deno run -A --unstable-net scenarios/shm_posix.ts
import { NotFoundError, SharedMemory } from "../mod.ts";
import { runRole, scenarioArgs, trace, traceEvent } from "./_common.ts";

const SIZE = 4096;
const { role, values } = scenarioArgs();
const SHM = `shared memory ${values.name ?? ""}`;

if (role === "producer") {
  traceEvent(role, "create", {
    object: SHM,
    label: "shm_open(O_CREAT | O_EXCL)",
    text: `shm_open("${values.name}", O_CREAT | O_EXCL | O_RDWR, 0600)`,
  });
  trace(role, `posix_fallocate(fd, 0, ${SIZE}): sizes it like ftruncate, and reserves the memory`);
  trace(role, `mmap(0, ${SIZE}, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`);
  using shm = SharedMemory.create({ name: values.name, size: SIZE });
  const encoder = new TextEncoder();
  let offset = 0;
  for (const message of ["Hello", "World!"]) {
    const { written } = encoder.encodeInto(message, shm.bytes.subarray(offset));
    traceEvent(role, "send", {
      object: SHM,
      label: `"${message}" at offset ${offset}`,
      text: `wrote "${message}" at offset ${offset} (ptr += ${written})`,
    });
    offset += written;
  }
  shm.bytes[offset] = 0; // NUL-terminated, as sprintf leaves it
  shm.close();
  trace(role, "munmap: closed its mapping; the object stays for the consumer");
} else if (role === "consumer") {
  using shm = SharedMemory.open({ name: values.name });
  traceEvent(role, "open", {
    object: SHM,
    label: "shm_open, fstat, mmap",
    text: `shm_open("${values.name}", O_RDWR); fstat: ${shm.size} bytes; mmap(MAP_SHARED)`,
  });
  const end = shm.bytes.indexOf(0);
  const text = new TextDecoder().decode(shm.bytes.subarray(0, end));
  traceEvent(role, "receive", { object: SHM, label: `"${text}"`, text: `read "${text}"` });
  shm.unlink();
  traceEvent(role, "unlink", {
    object: SHM,
    label: "shm_unlink",
    text: `shm_unlink("${values.name}")`,
  });
} else {
  const name = `/OS-${Deno.pid}`;
  trace("main", `POSIX shared memory: producer and consumer are separate processes`);
  try {
    await runRole(import.meta.url, "producer", { name });
    await runRole(import.meta.url, "consumer", { name });
    trace("main", `done: "${name}" no longer exists`);
  } finally {
    removeIfPresent(name); // only if a step failed before the consumer removed it
  }
}

function removeIfPresent(name: string): void {
  try {
    SharedMemory.unlink(name);
  } catch (error) {
    if (!(error instanceof NotFoundError)) console.error(error);
  }
}

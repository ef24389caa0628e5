// Child process for the memory tests: runs open/use/close cycles of one kind of handle
// and prints the growth of this process's resident memory (VmRSS) as JSON.
//   direct CYCLES   two DirectEndpoints open, one message each way, both closed
//   queues CYCLES   a System V queue and a POSIX queue created, used, removed, closed
import { DirectEndpoint, MessageQueue, PosixMessageQueue } from "../../mod.ts";

const [kind, cyclesText] = Deno.args;
const cycles = Number(cyclesText);

function residentMiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

const namespace = `mem${Deno.pid}`;
let cycle: () => Promise<void> | void;
let cleanup = () => {};
if (kind === "direct") {
  cycle = async () => {
    using a = DirectEndpoint.open({ name: "a", namespace });
    using b = DirectEndpoint.open({ name: "b", namespace });
    await a.send("b", "ping", { timeout: 5000 });
    await b.receive({ timeout: 5000 });
  };
  cleanup = () => {
    for (const name of ["a", "b"]) {
      using endpoint = DirectEndpoint.open({ name, namespace });
      endpoint.unlink();
    }
  };
} else if (kind === "queues") {
  cycle = () => {
    using systemV = MessageQueue.create();
    systemV.trySend(1, "ping");
    systemV.tryReceive();
    systemV.remove();
    using posix = PosixMessageQueue.create({ maxMessages: 1, messageSize: 8192 });
    posix.trySend("ping");
    posix.tryReceive();
    posix.unlink();
  };
} else {
  throw new TypeError(`unknown kind ${kind}`);
}

// Warm up (JIT, first mappings), then measure.
for (let i = 0; i < 100; i++) await cycle();
const start = residentMiB();
try {
  for (let i = 0; i < cycles; i++) await cycle();
} finally {
  cleanup();
}
console.log(JSON.stringify({ kind, cycles, growthMiB: residentMiB() - start }));

// Native memory must not grow with open/close cycles. Each run is a child process
// (tests/children/memory_cycles_child.ts) that reports its own RSS growth.
//
// Measured here (growth over 10,000 cycles, before -> after the fix): two DirectEndpoints
// with a message each way 139 -> 53 MiB (levelling off at 57 MiB over 100,000 cycles);
// after 2,000 cycles the old code had grown 96 MiB, the new one about 20. The cause was
// an AbortController made for every handle's lifetime (every SharedMemory, store and
// endpoint), which V8 collects late; it is now made only when something waits.
//
// DENO_IPC_LONG=1 runs 20,000 cycles.
import assert from "node:assert/strict";
import { ipcTest, runChild } from "./_helpers.ts";

const LONG = Deno.env.get("DENO_IPC_LONG") === "1";

async function growth(kind: string, cycles: number): Promise<number> {
  const result = await runChild("memory_cycles_child.ts", [kind, `${cycles}`]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!).growthMiB;
}

ipcTest(
  "memory: DirectEndpoint open/send/receive/close cycles keep RSS growth bounded",
  async () => {
    const cycles = LONG ? 20_000 : 2_000;
    const bound = LONG ? 90 : 45;
    const grown = await growth("direct", cycles);
    assert.ok(
      grown < bound,
      `RSS grew ${grown.toFixed(1)} MiB over ${cycles} cycles (bound ${bound})`,
    );
  },
);

ipcTest(
  "memory: System V and POSIX queue create/use/remove cycles keep RSS growth bounded",
  async () => {
    const cycles = LONG ? 20_000 : 2_000;
    const grown = await growth("queues", cycles);
    assert.ok(grown < 30, `RSS grew ${grown.toFixed(1)} MiB over ${cycles} cycles (bound 30)`);
  },
);

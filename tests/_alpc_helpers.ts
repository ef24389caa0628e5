// Shared by the ALPC tests: a test that must also leave no connection port in /tmp.
import assert from "node:assert/strict";
import { ipcTest } from "./_helpers.ts";

function ports(): Set<string> {
  return new Set(
    Array.from(Deno.readDirSync("/tmp"), (entry) => entry.name)
      .filter((name) => name.startsWith("deno-ipc-alpc.")),
  );
}

/** {@link ipcTest}, and no ALPC connection port (socket file in /tmp) left behind. */
export function alpcTest(name: string, fn: (t: Deno.TestContext) => Promise<void> | void): void {
  ipcTest(name, async (t) => {
    const before = ports();
    await fn(t);
    const left = [...ports()].filter((port) => !before.has(port));
    assert.deepEqual(left, [], `ALPC ports left in /tmp: ${left.join(", ")}`);
  });
}

import assert from "node:assert/strict";
import { SCENARIOS } from "../scenarios/demo.ts";
import { ipcTest } from "./_helpers.ts";

const directory = new URL("../scenarios/", import.meta.url);

ipcTest("every scenario file is part of the demo", () => {
  const files = Array.from(Deno.readDirSync(directory), (entry) => entry.name)
    .filter((name) => name.endsWith(".ts") && !name.startsWith("_") && name !== "demo.ts")
    .sort();
  assert.deepEqual([...SCENARIOS].sort(), files);
});

for (const scenario of SCENARIOS) {
  ipcTest(`scenario ${scenario} runs to exit 0 and cleans up`, async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-net", new URL(scenario, directory).pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.ok(output.stdout.length > 0, "the scenario printed no trace");
  });
}

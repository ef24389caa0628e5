// The main demonstration: every scenario, one after another, each in its own process.
//
//   deno task demo            (or: deno run -A --unstable-net scenarios/demo.ts)
//   deno task demo --diagram DIR
//                             also writes DIR/NAME.{jsonl,mmd,md,svg} per scenario and
//                             DIR/index.md linking them
import { parseArgs } from "node:util";

/** Scenarios in teaching order. Every scenario file must be listed here. */
export const SCENARIOS: readonly string[] = [
  "shm_posix.ts",
  "file_ipc.ts",
  "critical_section.ts",
  "producer_consumer_shm.ts",
  "signals.ts",
  "pipe_parent_child.ts",
  "fifo_client_server.ts",
  "message_queue.ts",
  "mailbox.ts",
  "direct_communication.ts",
  "buffering.ts",
  "socket_echo.ts",
  "udp_multicast.ts",
  "rpc.ts",
  "crash_and_clean.ts",
  "mach_ports.ts",
  "alpc.ts",
];

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { diagram: { type: "string" } } });
  const directory = values.diagram;
  if (directory !== undefined) Deno.mkdirSync(directory, { recursive: true });
  const failed: string[] = [];
  for (const scenario of SCENARIOS) {
    console.log(`\n=== scenarios/${scenario} ${"=".repeat(Math.max(0, 60 - scenario.length))}`);
    const base = scenario.replace(/\.ts$/, "");
    const status = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        new URL(scenario, import.meta.url).pathname,
        ...(directory === undefined ? [] : [`--diagram=${directory}/${base}`]),
      ],
      stdin: "null",
    }).spawn().status;
    if (status.code !== 0) failed.push(scenario);
  }
  if (directory !== undefined) {
    const links = SCENARIOS.map((scenario) => scenario.replace(/\.ts$/, ""))
      .map((base) =>
        `- ${base}: [Mermaid](${base}.md), [SVG](${base}.svg), [trace](${base}.jsonl)`
      );
    Deno.writeTextFileSync(
      `${directory}/index.md`,
      ["# Sequence diagrams of the scenario runs", "", ...links, ""].join("\n"),
    );
  }
  console.log(
    failed.length === 0
      ? `\nAll ${SCENARIOS.length} scenarios ran.`
      : `\nFailed: ${failed.join(", ")}`,
  );
  Deno.exit(failed.length === 0 ? 0 : 1);
}

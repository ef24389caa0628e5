// Every scenario run with `--diagram FILE` writes its trace and a diagram of it: Mermaid
// text that Mermaid's own parser (npm:mermaid) accepts, the same text in a Markdown page,
// and an SVG with one lifeline per participant and one arrow per Mermaid arrow.
import assert from "node:assert/strict";
import mermaid from "mermaid";
import { SCENARIOS } from "../scenarios/demo.ts";
import { parseTrace } from "../scenarios/_trace.ts";
import { ipcTest } from "./_helpers.ts";

const directory = new URL("../scenarios/", import.meta.url);
const ARROW = /^\s*\w+(->>|-->>|-\)|--x)\w+: /;

for (const scenario of SCENARIOS) {
  ipcTest(`scenario ${scenario} --diagram writes a trace, Mermaid, Markdown and SVG`, async () => {
    const output = Deno.makeTempDirSync({ prefix: "deno-ipc-diagram-" });
    try {
      const base = `${output}/${scenario.replace(/\.ts$/, "")}`;
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--unstable-net",
          new URL(scenario, directory).pathname,
          "--diagram",
          base,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      assert.match(new TextDecoder().decode(run.stdout), /diagram: .*\.mmd, .*\.md, .*\.svg/);

      const events = parseTrace(Deno.readTextFileSync(`${base}.jsonl`));
      const drawn = events.filter((event) => event.kind !== "note");
      assert.ok(drawn.length >= 2, "the scenario records structured events, not only notes");
      assert.ok(
        new Set(events.map((event) => event.pid)).size >= 2,
        "events from several processes",
      );

      const text = Deno.readTextFileSync(`${base}.mmd`);
      await mermaid.parse(text);
      const page = Deno.readTextFileSync(`${base}.md`);
      assert.ok(
        page.includes("```mermaid\n" + text + "```\n"),
        "the Markdown page holds the diagram",
      );

      const lines = text.split("\n");
      const participants = lines.filter((line) => line.startsWith("  participant ")).length;
      const arrows = lines.filter((line) => ARROW.test(line)).length;
      assert.ok(arrows >= 1);
      const svg = Deno.readTextFileSync(`${base}.svg`);
      assert.equal(svg.match(/<g class="participant"/g)?.length, participants);
      assert.equal(svg.match(/<g class="arrow"/g)?.length, arrows);
    } finally {
      Deno.removeSync(output, { recursive: true });
    }
  });
}

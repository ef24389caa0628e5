// The scenarios' trace format and the sequence-diagram writers: format checks, golden
// Mermaid text, SVG structure, Mermaid's own parser (npm:mermaid), concurrent appends from
// several processes, and the SVG rendered by headless Chromium.
import assert from "node:assert/strict";
import fc from "fast-check";
import mermaid from "mermaid";
import {
  buildDiagram,
  causalOrder,
  diagramBase,
  mermaidText,
  toMarkdown,
  toMermaid,
} from "../scenarios/_diagram.ts";
import { toSvg, wrap, xmlText } from "../scenarios/_diagram_svg.ts";
import {
  formatEvent,
  makeEvent,
  parseTrace,
  TRACE_VARIABLE,
  type TraceEvent,
  TraceFormatError,
} from "../scenarios/_trace.ts";
import { findChromium, HeadlessPage } from "./_browser.ts";
import { ipcTest, propertyRuns } from "./_helpers.ts";

const event = (
  t: number,
  pid: number,
  role: string,
  kind: TraceEvent["kind"],
  fields: Partial<TraceEvent> = {},
): TraceEvent => ({ v: 1, t: 1000 + t, pid, role, kind, ...fields });

/** A small run: create, a send, a blocked sender woken by a receive, a summary... */
const SAMPLE: TraceEvent[] = [
  event(0, 10, "main", "create", { object: "buffer", label: "5 slots" }),
  event(1, 11, "producer", "send", { object: "buffer", label: "item 1" }),
  event(2, 11, "producer", "block", { object: "buffer", label: "buffer full" }),
  event(3, 12, "consumer", "receive", { object: "buffer", label: "item 1" }),
  event(4, 11, "producer", "wake", { object: "buffer", label: "a slot is free" }),
  event(5, 11, "producer", "summary", { object: "buffer", label: "64 B", count: 100_000 }),
  event(6, 10, "main", "signal", { peer: "consumer", label: "SIGTERM" }),
  event(7, 12, "consumer", "note", { text: "bye; <done> #1 & out" }),
  event(8, 10, "main", "unlink", { object: "buffer" }),
];

const SAMPLE_MERMAID = `sequenceDiagram
  participant P0 as main (pid 10)
  participant O0 as buffer
  participant P1 as producer (pid 11)
  participant P2 as consumer (pid 12)
  P0-->>O0: create: 5 slots
  P1->>O0: item 1
  activate P1
  Note right of P1: blocked: buffer full
  O0->>P2: item 1
  Note right of P1: woken: a slot is free
  deactivate P1
  loop 100,000 times (summarised)
    P1->>O0: 64 B
  end
  P0-)P2: SIGTERM
  Note over P2: bye#59; #lt;done#gt; #35;1 & out
  P0--xO0: unlink
`;

Deno.test("a trace event is one JSON line that parses back to the same event", () => {
  const made = makeEvent("producer", "send", { object: "queue", label: "hello", text: "sent" });
  assert.equal(made.v, 1);
  assert.equal(made.pid, Deno.pid);
  assert.ok(Math.abs(made.t - Date.now()) < 60_000);
  const line = formatEvent(made);
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(parseTrace(line + "\n" + line), [made, made]);
});

Deno.test("a trace line stays under PIPE_BUF however long the texts are", () => {
  const long = "é".repeat(10_000);
  const line = formatEvent(
    makeEvent(long, "send", { object: long, peer: long, label: long, text: long }),
  );
  assert.ok(new TextEncoder().encode(line).length < 4096, `${line.length} characters`);
  assert.equal(parseTrace(line)[0].kind, "send");
});

Deno.test("a malformed trace line is a TraceFormatError naming the line and the field", () => {
  const good = formatEvent(makeEvent("r", "note", { text: "ok" }));
  const cases: [string, RegExp][] = [
    ["not json", /line 2: not JSON/],
    [`{"v":2,"t":1,"pid":1,"role":"r","kind":"note"}`, /line 2: unknown version 2/],
    [`{"v":1,"t":"1","pid":1,"role":"r","kind":"note"}`, /line 2: t is not a number/],
    [`{"v":1,"t":1,"pid":1.5,"role":"r","kind":"note"}`, /line 2: pid/],
    [`{"v":1,"t":1,"pid":1,"role":"","kind":"note"}`, /line 2: role/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"teleport"}`, /line 2: unknown kind teleport/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"create"}`, /line 2: create without an object/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"send"}`, /line 2: send without an object or/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"signal"}`, /line 2: signal without a peer/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"summary","object":"o"}`, /without a count/],
    [`{"v":1,"t":1,"pid":1,"role":"r","kind":"note","label":7}`, /line 2: label is not text/],
    [`[1]`, /line 2: not an object/],
  ];
  for (const [line, message] of cases) {
    assert.throws(() => parseTrace(good + line + "\n"), (error: Error) => {
      assert.ok(error instanceof TraceFormatError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
});

ipcTest("four processes appending to one trace file never interleave their lines", async () => {
  const path = Deno.makeTempFileSync({ prefix: "deno-ipc-trace-", suffix: ".jsonl" });
  try {
    const roles = ["a", "b", "c", "d"];
    const COUNT = 1000;
    const start = Date.now() + 2000; // all four are running by then
    const outputs = await Promise.all(roles.map((role) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./children/trace_child.ts", import.meta.url).pathname,
          role,
          String(COUNT),
          "590",
          String(start),
        ],
        env: { [TRACE_VARIABLE]: path },
        stdout: "piped",
        stderr: "piped",
      }).output()
    ));
    for (const output of outputs) {
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    }
    const events = parseTrace(Deno.readTextFileSync(path)); // throws on a torn line
    assert.equal(events.length, roles.length * COUNT);
    for (const role of roles) {
      const sequence = events.filter((e) => e.role === role).map((e) =>
        Number(e.label!.split(" ")[0])
      );
      assert.deepEqual(sequence, Array.from({ length: COUNT }, (_, i) => i), role);
    }
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("causal order: a receive stamped before its send is drawn after it", () => {
  const events = [
    event(0, 2, "receiver", "block", { object: "q", label: "empty" }),
    event(1, 2, "receiver", "wake", { object: "q" }),
    event(2, 2, "receiver", "receive", { object: "q", label: "m" }),
    event(3, 2, "receiver", "note", { text: "after the receive" }),
    event(4, 1, "sender", "send", { object: "q", label: "m" }),
    event(5, 1, "sender", "note", { text: "after the send" }),
  ];
  const order = causalOrder(events).map((e) => `${e.role}:${e.kind}`);
  assert.deepEqual(order, [
    "receiver:block",
    "sender:send",
    "receiver:wake",
    "receiver:receive",
    "receiver:note",
    "sender:note",
  ]);
});

Deno.test("causal order: a blocked sender wakes after the receive that made room", () => {
  const events = [
    event(0, 1, "sender", "send", { object: "box", label: "m1" }),
    event(0.5, 1, "sender", "block", { object: "box", label: "full" }),
    event(3, 1, "sender", "wake", { object: "box" }),
    event(3.5, 1, "sender", "send", { object: "box", label: "m2" }),
    event(4, 2, "receiver", "receive", { object: "box", label: "m1" }),
  ];
  assert.deepEqual(causalOrder(events).map((e) => `${e.kind}:${e.label ?? ""}`), [
    "send:m1",
    "block:full",
    "receive:m1",
    "wake:",
    "send:m2",
  ]);
});

Deno.test("causal order: each wake is caused by a different receive, even when stamped late", () => {
  // A rendezvous whose receiver stamps its receives after the sender has moved on.
  const events = [
    event(0, 1, "sender", "send", { object: "box", label: "m1" }),
    event(0, 1, "sender", "block", { object: "box" }),
    event(10, 1, "sender", "wake", { object: "box" }),
    event(10.1, 1, "sender", "send", { object: "box", label: "m2" }),
    event(10.1, 1, "sender", "block", { object: "box" }),
    event(12, 2, "receiver", "receive", { object: "box", label: "m1" }),
    event(20, 1, "sender", "wake", { object: "box" }),
    event(21, 2, "receiver", "receive", { object: "box", label: "m2" }),
  ];
  assert.deepEqual(causalOrder(events).map((e) => `${e.kind}:${e.label ?? ""}`), [
    "send:m1",
    "block:",
    "receive:m1",
    "wake:",
    "send:m2",
    "block:",
    "receive:m2",
    "wake:",
  ]);
});

Deno.test("causal order: two processes that each report waiting on the other keep their order", () => {
  // Both find a contended buffer busy at once, so each reports a block; neither rule may
  // then push one process's later events past the other's (the run's other rows would
  // otherwise be drawn first).
  const events = [
    event(0, 2, "consumer", "block", { object: "buffer", label: "empty" }),
    event(1, 1, "producer", "block", { object: "buffer", label: "full" }),
    event(2, 1, "producer", "wake", { object: "buffer" }),
    event(3, 1, "producer", "send", { object: "buffer", label: "item 9" }),
    event(4, 2, "consumer", "wake", { object: "buffer" }),
    event(5, 2, "consumer", "receive", { object: "buffer", label: "item 9" }),
    event(6, 3, "other", "note", { text: "later, elsewhere" }),
  ];
  assert.deepEqual(causalOrder(events).map((e) => `${e.role}:${e.kind}`), [
    "consumer:block",
    "producer:block",
    "producer:wake",
    "producer:send",
    "consumer:wake",
    "consumer:receive",
    "other:note",
  ]);
});

Deno.test("causal order keeps every event once and each process's own order, on any trace", async () => {
  const kinds = ["note", "send", "receive", "block", "wake"] as const;
  const anyEvent = fc.record({
    t: fc.integer({ min: 0, max: 50 }),
    pid: fc.integer({ min: 1, max: 3 }),
    kind: fc.constantFrom(...kinds),
    object: fc.constantFrom("a", "b"),
    label: fc.constantFrom("x", "y", "z"),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(anyEvent, { maxLength: 40 }), async (drafts) => {
      const events = drafts.map((d) =>
        event(d.t, d.pid, `role ${d.pid}`, d.kind, { object: d.object, label: d.label })
      );
      const ordered = causalOrder(events);
      assert.equal(ordered.length, events.length);
      assert.deepEqual(new Set(ordered), new Set(events));
      for (const pid of [1, 2, 3]) {
        const own = events.map((e, i) => ({ e, i })).filter(({ e }) => e.pid === pid)
          .sort((a, b) => a.e.t - b.e.t || a.i - b.i).map(({ e }) => e);
        assert.deepEqual(ordered.filter((e) => e.pid === pid), own);
      }
      await mermaid.parse(toMermaid(buildDiagram("any", events))); // balanced activations
    }),
    { numRuns: propertyRuns(300) },
  );
});

Deno.test("the Mermaid writer turns the sample run into the golden text", () => {
  assert.equal(toMermaid(buildDiagram("sample", SAMPLE)), SAMPLE_MERMAID);
});

Deno.test("Mermaid text escapes entity, statement and HTML characters", () => {
  assert.equal(mermaidText("a;b#c<d>e\nf"), "a#59;b#35;c#lt;d#gt;e f");
});

Deno.test("Mermaid's own parser (npm:mermaid) accepts the golden and a long diagram", async () => {
  assert.deepEqual(await mermaid.parse(SAMPLE_MERMAID), { diagramType: "sequence", config: {} });
  const many = Array.from({ length: 400 }, (_, i) => [
    event(i, 1, "p", "block", { object: "o", label: "full" }),
    event(i + 0.5, 1, "p", "send", { object: "o", label: `m ${i}; <x>` }),
  ]).flat();
  const text = toMermaid(buildDiagram("long", many));
  assert.match(text, /steps omitted/);
  await mermaid.parse(text); // throws on a syntax error or unbalanced activations
  await assert.rejects(mermaid.parse("sequenceDiagram\n  deactivate P0\n"));
});

Deno.test("a moved right and direct messages between processes are drawn as arrows", () => {
  const diagram = buildDiagram("rights", [
    event(0, 1, "task A", "move", { object: "port P", peer: "task B", label: "send right" }),
    event(1, 1, "task A", "send", { peer: "task B", label: "call f()" }),
    event(2, 1, "task A", "receive", { peer: "task B", label: "= 1" }),
  ]);
  assert.equal(
    toMermaid(diagram),
    `sequenceDiagram
  participant P0 as task A (pid 1)
  participant O0 as port P
  participant P1 as task B
  P0->>O0: right: send right
  O0->>P1: right: send right
  P0->>P1: call f()
  P1->>P0: = 1
`,
  );
});

Deno.test("every Mermaid diagram in README.md parses with Mermaid's parser", async () => {
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  const blocks = Array.from(readme.matchAll(/```mermaid\n([\s\S]*?)```/g), (m) => m[1]);
  assert.ok(blocks.length >= 1);
  for (const block of blocks) await mermaid.parse(block);
});

Deno.test("the Markdown page wraps the Mermaid text in a mermaid block", () => {
  const diagram = buildDiagram("scenarios/sample.ts", SAMPLE);
  const page = toMarkdown(diagram, "sample.svg");
  assert.ok(page.startsWith("# scenarios/sample.ts\n\n```mermaid\nsequenceDiagram\n"));
  assert.ok(page.includes(toMermaid(diagram).trimEnd() + "\n```\n"));
  assert.ok(page.includes("(sample.svg)"));
  assert.equal(diagramBase("out/run.svg"), "out/run");
  assert.equal(diagramBase("out/run"), "out/run");
});

/** Attribute values of every element of `className` in an SVG text. */
function elements(svg: string, className: string): Record<string, string>[] {
  const found = svg.matchAll(new RegExp(`<(?:g|rect) class="${className}"([^>]*)>`, "g"));
  return Array.from(found, ([, attributes]) =>
    Object.fromEntries(
      Array.from(attributes.matchAll(/([\w-]+)="([^"]*)"/g), ([, key, value]) => [key, value]),
    ));
}

Deno.test("the SVG writer draws lifelines, labelled arrows, a bar, notes and a loop", () => {
  const svg = toSvg(buildDiagram("sample <run>", SAMPLE));
  assert.ok(svg.startsWith(`<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns=`));
  assert.ok(!/https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(svg), "no network references");
  assert.ok(!svg.includes("<script"));
  assert.match(svg, /<title>sample &lt;run&gt;<\/title>/);
  assert.deepEqual(
    elements(svg, "participant").map((p) => `${p["data-kind"]}:${p["data-name"]}`),
    ["process:main", "object:buffer", "process:producer", "process:consumer"],
  );
  assert.deepEqual(
    elements(svg, "arrow").map((a) => `${a["data-from"]}>${a["data-to"]}:${a["data-label"]}`),
    [
      "main>buffer:create: 5 slots",
      "producer>buffer:item 1",
      "buffer>consumer:item 1",
      "producer>buffer:64 B",
      "main>consumer:SIGTERM",
      "main>buffer:unlink",
    ],
  );
  assert.deepEqual(elements(svg, "activation").map((a) => a["data-participant"]), ["producer"]);
  assert.deepEqual(
    elements(svg, "note").map((n) => `${n["data-over"]}:${n["data-tone"]}`),
    ["producer:blocked", "producer:woken", "consumer:note"],
  );
  assert.deepEqual(elements(svg, "loop").map((l) => l["data-label"]), [
    "100,000 times (summarised)",
  ]);
  assert.ok(svg.includes("bye; &lt;done&gt; #1 &amp; out"));
  // Time flows downward: each arrow's line is below the previous one.
  const ys = Array.from(
    svg.matchAll(/<g class="arrow"[^>]*><line [^>]*y1="([\d.]+)"/g),
    (m) => Number(m[1]),
  );
  assert.deepEqual([...ys].sort((a, b) => a - b), ys);
});

Deno.test("SVG helpers escape XML and wrap long notes at spaces", () => {
  assert.equal(xmlText(`<a href="x">&'`), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  assert.deepEqual(wrap("one two three four", 9), ["one two", "three", "four"]);
  assert.deepEqual(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
});

const chromium = findChromium();
if (chromium === undefined) {
  console.log(
    "diagram_test: no Chromium found (chromium, chromium-browser, google-chrome on PATH, or " +
      "DENO_IPC_CHROMIUM): the real-browser test is skipped. Install it with " +
      "`apt-get install -y chromium` (.ci/run does).",
  );
}

Deno.test({
  name: "headless Chromium renders a real run's SVG with its lifelines and arrows in place",
  ignore: chromium === undefined,
  sanitizeOps: false, // Chromium's WebSocket is closed, but its ops finish asynchronously
  sanitizeResources: false,
  fn: async () => {
    const directory = Deno.makeTempDirSync({ prefix: "deno-ipc-diagram-" });
    const keep = Deno.env.get("DENO_IPC_SCREENSHOT_DIR");
    try {
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--unstable-net",
          new URL("../scenarios/producer_consumer_shm.ts", import.meta.url).pathname,
          `--diagram=${directory}/run`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      const svgPath = `${directory}/run.svg`;
      await using page = await HeadlessPage.open(chromium!, { width: 1400, height: 1000 });
      await page.goto(`file://${svgPath}`, "image/svg+xml");
      const found = await page.evaluate<{
        error: boolean;
        width: number;
        height: number;
        lifelines: Record<string, number>;
        arrows: { from: string; to: string; label: string; x1: number; x2: number }[];
        bars: number;
        loops: string[];
      }>(`(() => {
        const lifelines = {};
        for (const p of document.querySelectorAll("g.participant")) {
          const box = p.querySelector("line.lifeline").getBBox();
          lifelines[p.dataset.name] = box.x + box.width / 2;
        }
        const arrows = [...document.querySelectorAll("g.arrow")].map((a) => {
          const box = (a.querySelector("line") ?? a.querySelector("path")).getBBox();
          return { from: a.dataset.from, to: a.dataset.to, label: a.dataset.label,
            x1: box.x, x2: box.x + box.width };
        });
        const svg = document.documentElement;
        return {
          error: document.querySelector("parsererror") !== null || svg.tagName !== "svg",
          width: svg.width.baseVal.value, height: svg.height.baseVal.value,
          lifelines, arrows,
          bars: document.querySelectorAll("rect.activation").length,
          loops: [...document.querySelectorAll("g.loop")].map((l) => l.dataset.label),
        };
      })()`);
      assert.equal(found.error, false, "Chromium could not parse the SVG");
      for (const name of ["main", "producer", "consumer", "bounded buffer (shm)"]) {
        assert.ok(name in found.lifelines, `lifeline ${name}`);
      }
      for (const n of [1, 12]) {
        const into = found.arrows.find((a) => a.label === `item ${n}` && a.to !== "consumer");
        const out = found.arrows.find((a) => a.label === `item ${n}` && a.to === "consumer");
        assert.equal(into?.from, "producer");
        assert.equal(out?.from, "bounded buffer (shm)");
      }
      // Every arrow runs from its sender's lifeline to its receiver's (bars shift it by 5).
      for (const arrow of found.arrows) {
        const ends = [found.lifelines[arrow.from], found.lifelines[arrow.to]];
        const left = Math.min(...ends);
        const right = Math.max(...ends);
        if (left === right) continue;
        assert.ok(
          Math.abs(arrow.x1 - left) <= 6 && Math.abs(arrow.x2 - right) <= 6,
          `${arrow.from} -> ${arrow.to} "${arrow.label}" spans ${arrow.x1}..${arrow.x2}`,
        );
      }
      assert.ok(found.bars > 0, "blocking shown as activation bars");
      assert.ok(found.loops.some((label) => label.startsWith("100,000 times")));
      const png = await page.screenshot(found.width, Math.min(found.height, 12_000));
      assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]); // PNG signature
      if (keep) {
        Deno.mkdirSync(keep, { recursive: true });
        Deno.writeFileSync(`${keep}/producer_consumer_shm.png`, png);
        Deno.copyFileSync(svgPath, `${keep}/producer_consumer_shm.svg`);
        console.log(`screenshot: ${keep}/producer_consumer_shm.png`);
      }
    } finally {
      Deno.removeSync(directory, { recursive: true });
    }
  },
});

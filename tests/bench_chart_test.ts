// The SVG chart of a bench report (bench/_chart.ts): checked for its structure, not pixels.
import assert from "node:assert/strict";
import { escapeXml, rateScale, renderChart, shortNumber } from "../bench/_chart.ts";
import { fakeReport, fakeResult } from "./_bench_fixture.ts";

/** Checks that `svg` is well-formed XML (tags nest and close) and returns its element names. */
function elements(svg: string): string[] {
  const stack: string[] = [];
  const seen: string[] = [];
  for (const match of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*?)(\/?)>/g)) {
    const [, closing, name, attributes, selfClosing] = match;
    assert.doesNotMatch(attributes, /<|&(?!#?\w+;)/, `raw < or & inside <${name}>`);
    if (closing) assert.equal(stack.pop(), name, `</${name}> closes another element`);
    else {
      seen.push(name);
      if (!selfClosing) stack.push(name);
    }
  }
  assert.deepEqual(stack, [], "unclosed elements");
  // Text between tags has no raw markup characters either.
  for (const text of svg.split(/<[^>]*>/)) assert.doesNotMatch(text, /[<>]|&(?!#?\w+;)/);
  return seen;
}

function groups(svg: string, cls: string): string[] {
  return [...svg.matchAll(new RegExp(`<g class="${cls}"[\\s\\S]*?</g>`, "g"))].map((m) => m[0]);
}

Deno.test("bench chart: one group per case with both sides' bars, their values and the ratio", () => {
  const report = fakeReport([
    fakeResult("ring 64 B one-way", 8_000_000, 26_000_000, { ratios: [0.3, 0.31, 0.29] }),
    fakeResult("pipe 64 B round trip", 20_000, 18_000, { ratios: [1.1, 1.6, 0.9] }),
    fakeResult("mailbox / ring, 64 B one-way", 4e6, 8e6, {
      kind: "deno-vs-deno",
      labels: ["mailbox", "ring"],
    }),
  ]);
  const svg = renderChart(report);
  assert.ok(svg.startsWith("<svg "));
  assert.match(svg, /xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const names = elements(svg);
  assert.equal(names[0], "svg");
  const cases = groups(svg, "case");
  assert.equal(cases.length, 3);
  for (const [i, result] of report.results.entries()) {
    const group = cases[i];
    assert.match(
      group,
      new RegExp(`data-name="${escapeXml(result.name).replace(/[()/]/g, "\\$&")}"`),
    );
    assert.match(group, new RegExp(`data-kind="${result.kind}"`));
    const bars = [
      ...group.matchAll(/<rect class="bar (a|b)"[^>]*data-label="([^"]*)" data-value="([^"]*)"/g),
    ];
    assert.deepEqual(bars.map((b) => [b[1], b[2], Number(b[3])]), [
      ["a", result.a.label, result.a.rate],
      ["b", result.b.label, result.b.rate],
    ]);
    assert.equal([...group.matchAll(/<text class="value"/g)].length, 2);
    assert.match(
      group,
      new RegExp(`<text class="ratio[^"]*"[^>]*>${result.ratio.median.toFixed(2)}x`),
    );
  }
  // The noisy case says so; the others do not.
  assert.match(cases[1], /data-noisy="true"/);
  assert.match(cases[1], /class="ratio noisy"[^>]*>1\.10x \(0\.90-1\.60\) noisy</);
  assert.doesNotMatch(cases[0], /noisy/);
  // Sections: Deno against C, then Deno against Deno.
  const sections = [...svg.matchAll(/<text class="section"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(sections, ["Deno against C", "Deno against Deno"]);
  // Longer bars for larger rates within one chart.
  const width = (group: string, side: string) =>
    Number(group.match(new RegExp(`class="bar ${side}"[^>]*width="([\\d.]+)"`))![1]);
  assert.ok(width(cases[0], "b") > width(cases[0], "a"));
  assert.ok(width(cases[0], "a") > width(cases[1], "a"));
});

Deno.test("bench chart: log scale with decade ticks when rates differ by orders of magnitude", () => {
  const svg = renderChart(fakeReport([
    fakeResult("fast", 26_000_000, 20_000_000),
    fakeResult("slow", 7_000, 18_000),
  ]));
  const axis = groups(svg, "axis")[0];
  assert.match(axis, /data-scale="log"/);
  const ticks = [...axis.matchAll(/<text class="tick-label"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(ticks, ["1k", "10k", "100k", "1M", "10M", "100M"]);
  assert.match(svg, /\(log scale\)/);
});

Deno.test("bench chart: linear scale from zero when rates are within two orders of magnitude", () => {
  const svg = renderChart(fakeReport([
    fakeResult("a", 450_000, 520_000),
    fakeResult("b", 20_000, 21_000),
  ]));
  const axis = groups(svg, "axis")[0];
  assert.match(axis, /data-scale="linear"/);
  const ticks = [...axis.matchAll(/<text class="tick-label"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.equal(ticks[0], "0");
  assert.ok(ticks.length >= 3 && ticks.length <= 7, ticks.join(" "));
  const scale = rateScale([450_000, 520_000, 20_000, 21_000]);
  assert.ok(scale.position(520_000) <= 1 && scale.position(520_000) > 0.5);
  assert.equal(scale.position(0), 0);
});

Deno.test("bench chart: names and machine facts are escaped, and the machine is named", () => {
  const svg = renderChart(fakeReport([fakeResult(`quote " & <tag>`, 10, 20)]));
  elements(svg);
  assert.match(svg, /data-name="quote &#34; &#38; &#60;tag&#62;"/);
  assert.match(svg, /Test CPU &#60;v2&#62; &#38; co, 2 cores/);
  assert.match(svg, /Deno 2\.9\.6, gcc 12\.2\.0; unpinned/);
});

Deno.test("bench chart: short numbers keep their zeros", () => {
  assert.equal(shortNumber(100_000), "100k");
  assert.equal(shortNumber(1e8), "100M");
  assert.equal(shortNumber(26_900_016), "26.9M");
  assert.equal(shortNumber(2_500), "2.5k");
  assert.equal(shortNumber(52.4), "52");
  assert.equal(shortNumber(0), "0");
});

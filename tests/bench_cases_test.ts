// Keeps bench/cases.ts consistent as cases are added (nothing is run or timed here): unique
// names, programs that exist, counts that reach the command lines, and comparisons that name
// real cases.
import assert from "node:assert/strict";
import { benchCases, benchComparisons } from "../bench/cases.ts";

const bench = new URL("../bench/", import.meta.url);

function exists(url: URL): boolean {
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

Deno.test("bench cases: unique names, existing programs, and n on both command lines", () => {
  const cases = benchCases();
  const names = cases.map((c) => c.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], "duplicate case names");
  for (const benchCase of cases) {
    assert.ok(Number.isInteger(benchCase.count) && benchCase.count > 0, benchCase.name);
    const [script, ...denoArgs] = benchCase.deno(123_457);
    const [program, ...cArgs] = benchCase.c(123_457);
    assert.ok(exists(new URL(script, bench)), `${benchCase.name}: bench/${script} is missing`);
    assert.ok(exists(new URL(`c/${program}.c`, bench)), `${benchCase.name}: bench/c/${program}.c`);
    // The count the runner picks must reach both programs' command lines.
    const line = (side: (n: number) => string[], n: number) => JSON.stringify(side(n));
    assert.notEqual(
      line(benchCase.deno, 1000),
      line(benchCase.deno, 2000),
      `${benchCase.name}: Deno side ignores n`,
    );
    assert.notEqual(
      line(benchCase.c, 1000),
      line(benchCase.c, 2000),
      `${benchCase.name}: C side ignores n`,
    );
    assert.ok(denoArgs.length > 0 && cArgs.length > 0);
  }
});

Deno.test("bench comparisons name two existing cases and unique rows", () => {
  const names = new Set(benchCases().map((c) => c.name));
  const comparisons = benchComparisons();
  const rows = comparisons.map((c) => c.name);
  assert.deepEqual(rows.filter((n, i) => rows.indexOf(n) !== i), [], "duplicate comparison names");
  for (const comparison of comparisons) {
    assert.ok(names.has(comparison.a), `${comparison.name}: no case "${comparison.a}"`);
    assert.ok(names.has(comparison.b), `${comparison.name}: no case "${comparison.b}"`);
    assert.notEqual(comparison.a, comparison.b);
    assert.ok(!names.has(comparison.name), `${comparison.name} is also a case's name`);
  }
});

// Keeps tests/_mutants.ts in step with the code, cheaply (no mutant is run here; that is
// `deno task mutants`): every find string occurs exactly once in its file, and every
// named test file exists and contains the named test.
import assert from "node:assert/strict";
import { MUTANTS } from "./_mutants.ts";
import { occurrences } from "./mutants.ts";

const root = new URL("../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, root));

Deno.test("mutants: ids are unique and every mutant changes something", () => {
  const ids = MUTANTS.map((m) => m.id);
  assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), []);
  for (const mutant of MUTANTS) {
    assert.match(mutant.id, /^[a-z0-9-]+$/, `${mutant.id}: ids are kebab-case`);
    assert.notEqual(mutant.find, mutant.replace, `${mutant.id}: replace equals find`);
    assert.ok(mutant.killers.length > 0, `${mutant.id}: names no test to kill it`);
  }
});

Deno.test("mutants: every find string occurs exactly once in its file", () => {
  const problems = MUTANTS.flatMap((mutant) => {
    let text: string;
    try {
      text = read(mutant.file);
    } catch {
      return [`${mutant.id}: ${mutant.file} does not exist`];
    }
    const count = occurrences(text, mutant.find);
    return count === 1 ? [] : [`${mutant.id}: find string occurs ${count} times in ${mutant.file}`];
  });
  assert.deepEqual(problems, [], "update tests/_mutants.ts to follow the code");
});

Deno.test("mutants: every named test file exists and contains the named test", () => {
  const problems = MUTANTS.flatMap((mutant) =>
    mutant.killers.flatMap(({ test, filter }) => {
      let text: string;
      try {
        text = read(test);
      } catch {
        return [`${mutant.id}: ${test} does not exist`];
      }
      if (filter.length === 0) return [`${mutant.id}: empty filter would run all of ${test}`];
      return text.includes(filter) ? [] : [`${mutant.id}: no test "${filter}" in ${test}`];
    })
  );
  assert.deepEqual(problems, [], "update tests/_mutants.ts to follow the tests");
});

import fc from "fast-check";
import { FIXTURES, interleavingProperty, modelProperty } from "./_channel_harness.ts";
import { ipcTest, propertyRuns } from "./_helpers.ts";

for (const fixture of FIXTURES) {
  ipcTest(
    `${fixture.label}: under random interleavings every item arrives once, in order, within capacity`,
    async () => {
      await fc.assert(interleavingProperty(fixture), { numRuns: propertyRuns(60) });
    },
  );

  ipcTest(
    `${fixture.label}: random try/timed send, receive and end agree with a FIFO model`,
    async () => {
      await fc.assert(modelProperty(fixture), { numRuns: propertyRuns(40) });
    },
  );
}

// Histories recorded by real processes sharing one kernel object, checked for
// linearizability: a POSIX message queue (one priority) is a bounded FIFO queue.
import assert from "node:assert/strict";
import fc from "fast-check";
import { PosixMessageQueue } from "../mod.ts";
import { checkLinearizable, fifoQueue, now, type Operation } from "./_linearizability.ts";
import { ipcTest, propertyRuns, runChild, testName } from "./_helpers.ts";

ipcTest(
  "POSIX message queue: histories of processes sending and receiving at once are linearizable",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer(),
        async (capacity, processes, seed) => {
          const name = testName("lin");
          using _queue = PosixMessageQueue.create({ name, maxMessages: capacity, messageSize: 64 });
          try {
            const start = `${now() + 1000}`; // after every child has started
            const children = Array.from(
              { length: processes },
              (_, p) =>
                runChild("history_child.ts", [
                  "posix-mq",
                  name,
                  `p${p}`,
                  "40",
                  `${seed + p}`,
                  start,
                ]),
            );
            const history: Operation[] = [];
            for (const child of await Promise.all(children)) {
              assert.equal(child.code, 0, child.stderr);
              history.push(...JSON.parse(child.stdout) as Operation[]);
            }
            const result = checkLinearizable(fifoQueue(capacity), history);
            assert.equal(result.result, "ok", result.result === "illegal" ? result.report : "");
          } finally {
            PosixMessageQueue.unlink(name);
          }
        },
      ),
      // Shrinking would rerun processes for little gain: the witness is the readable part.
      { numRuns: propertyRuns(3), endOnFailure: true },
    );
  },
);

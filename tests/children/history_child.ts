// Child process for the linearizability tests: runs random operations on a POSIX message
// queue and prints its history (one JSON array of operations) for the parent to check.
//   posix-mq NAME PROCESS COUNT SEED START
// START is when to begin (on the clock of histories), so that the processes run at once.
import { PosixMessageQueue, TimedOutError } from "../../mod.ts";
import { now, type Operation, record } from "../_linearizability.ts";

const [kind, name, process, count, seed, start] = Deno.args;
if (kind !== "posix-mq") throw new Error(`unknown kind ${kind}`);

let state = Number(seed) >>> 0;
function random(): number {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 2 ** 32;
}

using queue = PosixMessageQueue.open({ name });
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(start) - now())));
const history: Operation[] = [];
for (let i = 0; i < Number(count); i++) {
  const message = `${process}.${i}`.padEnd(8 + Math.floor(random() * 8), "."); // sizes vary
  const choice = random();
  try {
    if (choice < 0.25) {
      await record(
        history,
        { process, kind: "trySend", input: message },
        () => queue.trySend(message),
        (sent) => sent,
      );
    } else if (choice < 0.5) {
      await record(
        history,
        { process, kind: "send", input: message },
        () => queue.send(message, { timeout: 5 }),
      );
    } else if (choice < 0.75) {
      await record(
        history,
        { process, kind: "tryReceive" },
        () => queue.tryReceive(),
        (m) => m?.text(),
      );
    } else {
      await record(
        history,
        { process, kind: "receive" },
        () => queue.receive({ timeout: 5 }),
        (m) => m.text(),
      );
    }
  } catch (error) {
    if (!(error instanceof TimedOutError)) throw error;
    // The library's contract: an operation that timed out took no effect. Dropping its
    // record claims exactly that (a lost or duplicated message would then show).
    history.pop();
  }
}
console.log(JSON.stringify(history));

// Step-level interleavings of real processes on a MessageRing with several producers and
// several consumers. fast-check chooses the schedule (which process takes its next
// shared-memory step, who is killed inside which step) and shrinks a failure to a short
// list of choices; the failure message shows the granted steps in order.
//
// The hard states are reached on purpose: a ring of 64 bytes is full or empty most of
// the time, so locks are contended and processes sleep and are woken; positions start
// just below 2^32 or 2^31, so they wrap during the run; a participant may be killed while
// it holds a lock, after copying and before publishing, or after taking a message.
//
// Mutants that fail these properties (each checked): the first property kills dropping
// the wake after a failed attempt's lock release (shrinks to choices [1, 0]: "lost
// wake-up") and dropping the receivers' wake after a publish; the second kills not ending
// the stream for a dead producer ("no progress"). Aliasing at 2^32 needs 4 GiB of
// traffic: tests/message_ring_test.ts moves it for real. A step is atomic here, so a
// mutation inside one step (publishing before copying) is beyond this harness.
import assert from "node:assert/strict";
import fc from "fast-check";
import { testing } from "../lib/_testing.ts";
import { checkLinearizable, fifoQueue, type Operation, rendezvous } from "./_linearizability.ts";
import { BoundedBuffer, Mailbox, MessageRing } from "../mod.ts";
import { ipcTest, propertyRuns, testName } from "./_helpers.ts";
import {
  type ParticipantSpec,
  type RunResult,
  runSchedule,
  type Schedule,
} from "./_step_scheduler.ts";

const PARTICIPANTS: ParticipantSpec[] = [
  { role: "producer", count: 3 },
  { role: "producer", count: 3 },
  { role: "consumer", count: 0 },
  { role: "consumer", count: 0 },
];
const STARTS = [0, 2 ** 31 - 40, 2 ** 32 - 40];

const schedule = (maxKills: number) =>
  fc.record({
    choices: fc.array(fc.nat({ max: 7 }), { minLength: 1, maxLength: 200 }),
    kills: fc.array(fc.record({ at: fc.nat({ max: 120 }) }), { maxLength: maxKills }),
  });

async function runOnRing(start: number, plan: Schedule): Promise<RunResult> {
  testing.ringStartPosition = start;
  const ring = MessageRing.create({
    name: testName("sched"),
    capacity: 64,
    multiProducer: true,
    multiConsumer: true,
    producers: 2,
  });
  testing.ringStartPosition = 0;
  try {
    // A death is noticed within a wait slice or two: 20 s is far beyond that.
    return await runSchedule("ring", ring.name, PARTICIPANTS, plan, { deadlineMs: 20_000 });
  } finally {
    ring.close();
    ring.unlink();
  }
}

const TEXTBOOK_PARTICIPANTS: ParticipantSpec[] = [
  { role: "producer", count: 6 },
  { role: "consumer", count: 0 },
];

async function runOnTextbook(plan: Schedule): Promise<RunResult> {
  const buffer = BoundedBuffer.create({ name: testName("sched"), bufferSize: 3, itemSize: 48 });
  try {
    return await runSchedule("textbook", buffer.name, TEXTBOOK_PARTICIPANTS, plan);
  } finally {
    buffer.close();
    buffer.unlink();
  }
}

// Exactly once, whole, in each producer's order; a message may be missing only when a
// consumer was killed after taking it (one per such kill).
function check(result: RunResult, participants = PARTICIPANTS): void {
  const explain = () =>
    `\nkilled: ${JSON.stringify(result.killed)}\nsteps:\n  ${result.trace.join("\n  ")}`;
  assert.equal(result.stuck, undefined, `${result.stuck}${explain()}`);
  const attempted = new Set<string>();
  const completed = new Set<string>();
  const received = new Map<string, number>();
  const lastSequence = new Map<string, number>(); // "consumer/producer" -> sequence
  const ended = new Set<number>();
  for (const event of result.events) {
    if (event.op === "end") continue;
    if (event.op === "send") {
      (event.e === "inv" ? attempted : completed).add(event.v!);
      continue;
    }
    if (event.e !== "ok") continue;
    if (event.v === null) {
      ended.add(event.process);
      continue;
    }
    assert.notEqual(event.v, "CORRUPT", `P${event.process} received a corrupt message${explain()}`);
    received.set(event.v!, (received.get(event.v!) ?? 0) + 1);
    const [producer, sequence] = event.v!.split(":").map(Number);
    const key = `${event.process}/${producer}`;
    assert.ok(
      (lastSequence.get(key) ?? -1) < sequence,
      `P${event.process} received ${event.v} out of order${explain()}`,
    );
    lastSequence.set(key, sequence);
  }
  for (const [message, times] of received) {
    assert.equal(times, 1, `${message} received ${times} times${explain()}`);
    assert.ok(attempted.has(message), `${message} was never sent${explain()}`);
  }
  const lost = [...completed].filter((message) => !received.has(message));
  // Killed after its take: at the step that follows it ("taken"), or at the lock release
  // that follows that one.
  const mayLose = result.killed.filter((kill) =>
    kill.step.endsWith(".receive.taken") ||
    (kill.step.endsWith(".receive.released") && kill.previous?.endsWith(".receive.taken"))
  ).length;
  assert.ok(lost.length <= mayLose, `lost ${lost.join(", ")}${explain()}`);
  // The history is linearizable against a FIFO queue whose stream ends once every
  // producer ended (a killed producer's end is pending: it may have happened).
  const producers = participants.filter((participant) => participant.role === "producer").length;
  const verdict = checkLinearizable(fifoQueue(Infinity, { producers }), history(result));
  assert.notEqual(
    verdict.result,
    "illegal",
    `not linearizable:\n${verdict.result === "illegal" ? verdict.report : ""}${explain()}`,
  );
  // Every consumer that was not killed saw the end of the stream.
  const killed = new Set(result.killed.map((kill) => kill.process));
  participants.forEach((participant, i) => {
    if (participant.role === "consumer" && !killed.has(i)) {
      assert.ok(ended.has(i), `consumer P${i} never saw the end${explain()}`);
    }
  });
}

// Pairs each participant's invocations with their completions; an invocation a kill cut
// short is pending, and so is the end() of a killed producer.
function history(result: RunResult): Operation[] {
  const operations: Operation[] = [];
  const open = new Map<number, Operation>();
  for (const event of result.events) {
    if (event.e === "inv") {
      const operation: Operation = { process: event.process, kind: event.op, invokedAt: event.t };
      if (event.op === "send") operation.input = event.v;
      open.set(event.process, operation);
      operations.push(operation);
    } else {
      const operation = open.get(event.process)!;
      operation.completedAt = event.t;
      if (event.op === "receive") operation.output = event.v;
      open.delete(event.process);
    }
  }
  for (const kill of result.killed) {
    const ended = operations.some((op) => op.process === kill.process && op.kind === "end");
    const isProducer = result.events.some((event) =>
      event.process === kill.process && event.op === "send"
    );
    if (isProducer && !ended) {
      operations.push({ process: `${kill.process} (dead)`, kind: "end", invokedAt: 0 });
    }
  }
  return operations;
}

// A failing run can take seconds (a death is noticed within wait slices, a lost wake-up
// after 2 s of silence), so shrinking is asked for: DENO_IPC_SHRINK=1 with the printed seed.
// Without it the first counterexample is reported with its full list of granted steps.
const options = (runs: number) => ({
  numRuns: propertyRuns(runs),
  endOnFailure: Deno.env.get("DENO_IPC_SHRINK") !== "1",
});

ipcTest(
  "MessageRing, step by step: any interleaving of 2 producer and 2 consumer processes delivers each message once, in order, and wakes every sleeper",
  async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...STARTS), schedule(0), async (start, plan) => {
        check(await runOnRing(start, plan));
      }),
      {
        ...options(5),
        // Found by fast-check against "publish the head before copying" (shrunk): a
        // consumer takes its step while the producer is between length and payload.
        examples: [[0, { choices: [1, 0], kills: [] }]],
      },
    );
  },
);

ipcTest(
  "MessageRing, step by step: a process killed inside any step loses at most the message it had taken, and the others finish",
  async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...STARTS), schedule(1), async (start, plan) => {
        check(await runOnRing(start, plan));
      }),
      {
        ...options(3),
        // Found by CI: a producer killed at its very first step had not been tracked yet.
        examples: [
          [0, { choices: [0, 1], kills: [{ at: 0 }] }],
          // A consumer killed at the lock release after its take loses that message only.
          [0, { choices: [0, 6, 6, 1, 7, 0, 7], kills: [{ at: 106 }] }],
        ],
      },
    );
  },
);

ipcTest(
  "BoundedBuffer (textbook), step by step: any interleaving of its producer and consumer processes delivers each item once, in order, and wakes every sleeper",
  async () => {
    await fc.assert(
      fc.asyncProperty(schedule(0), async (plan) => {
        check(await runOnTextbook(plan), TEXTBOOK_PARTICIPANTS);
      }),
      options(3),
    );
  },
);

// Mailboxes have no end of stream: each consumer takes a fixed share.
const MAILBOX_PARTICIPANTS: ParticipantSpec[] = [
  { role: "producer", count: 2 },
  { role: "producer", count: 2 },
  { role: "consumer", count: 2 },
  { role: "consumer", count: 2 },
];

// Every message once, whole, in each producer's order per consumer; linearizable against
// a FIFO queue of the mailbox's capacity (a rendezvous at capacity 0).
function checkMailbox(result: RunResult, capacity: number): void {
  const explain = () => `\nsteps:\n  ${result.trace.join("\n  ")}`;
  assert.equal(result.stuck, undefined, `${result.stuck}${explain()}`);
  const received = result.events.filter((event) => event.op === "receive" && event.e === "ok");
  const values = received.map((event) => event.v!);
  assert.ok(!values.includes("CORRUPT"), `a corrupt message${explain()}`);
  assert.deepEqual(
    [...values].sort(),
    ["0:0", "0:1", "1:0", "1:1"],
    `not every message exactly once${explain()}`,
  );
  const model = capacity === 0 ? rendezvous() : fifoQueue(capacity);
  const verdict = checkLinearizable(
    model as Parameters<typeof checkLinearizable>[0],
    history(result),
  );
  assert.notEqual(
    verdict.result,
    "illegal",
    `not linearizable:\n${verdict.result === "illegal" ? verdict.report : ""}${explain()}`,
  );
}

ipcTest(
  "Mailbox, step by step: any interleaving of 2 sender and 2 receiver processes at capacity 0, 1 or 2 delivers each message once and is linearizable",
  async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(0, 1, 2), schedule(0), async (capacity, plan) => {
        const box = Mailbox.create({ name: testName("sched"), capacity });
        try {
          checkMailbox(
            await runSchedule("mailbox", box.name, MAILBOX_PARTICIPANTS, plan),
            capacity,
          );
        } finally {
          box.delete();
          box.close();
        }
      }),
      options(3),
    );
  },
);

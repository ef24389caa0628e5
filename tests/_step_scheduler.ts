// A step-level scheduler for real processes. Each participant (tests/children/
// step_participant.ts) stops at every named step of its protocol operations
// (lib/_steps.ts) and waits for the scheduler's grant, so the scheduler decides the
// interleaving of all processes' shared-memory steps: which one takes its next step, which
// one holds a lock while the others try, which one is killed inside a critical step.
//
// Sleeping is real: a participant that parks passes the step "wait.sleep" and then sleeps
// on its futex. With a long wait slice (no kills), a run in which every participant that
// has not finished sleeps and nobody reports for 2 s (a woken process reports within
// milliseconds, even on a loaded machine) has lost a wake-up: the run fails.
import { SharedMemory } from "../mod.ts";
import { delay, testName } from "./_helpers.ts";

/** Int32 words per participant slot in the control region. */
export const SLOT_WORDS = 32;
/** Slot word 0: the participant runs (between steps). */
export const STATE_RUNNING = 0;
/**
 * Slot word 0: the participant waits at a step for a grant. Word 1 counts grants, word 2
 * is the step name's length (the name from word 4 on), word 3 counts the participant's
 * reports.
 */
export const STATE_AT_STEP = 1;
/** Slot word 0: the participant finished its work. */
export const STATE_DONE = 2;

const PARTICIPANT = new URL("./children/step_participant.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

/** One participant: its role and arguments after the ring name. */
export interface ParticipantSpec {
  role: "producer" | "consumer";
  count: number;
}

/** A schedule: which waiting participant goes next, and whom to kill where. */
export interface Schedule {
  /** Consumed in turn (cyclically); each picks among the participants waiting at a step. */
  choices: number[];
  /** At decision number `at`, the picked participant is killed instead of granted. */
  kills: { at: number }[];
}

/** One line a participant printed. */
export interface Event {
  process: number;
  e: "inv" | "ok";
  op: "send" | "receive" | "end";
  v?: string | null;
  t: number;
}

/** What a run produced. */
export interface RunResult {
  events: Event[];
  /** Steps in the order granted: "P1 ring.send.locked", "kill P2 at ring.receive.taken". */
  trace: string[];
  /** Who was killed, at which step, and the step it took before (undefined: none). */
  killed: { process: number; step: string; previous: string | undefined }[];
  /** Set when every participant left slept and nobody reported (a lost wake-up). */
  stuck: string | undefined;
}

/** Runs the participants on the object `objectName` (a `kind`) under `schedule`. */
export async function runSchedule(
  kind: "ring" | "textbook" | "mailbox",
  objectName: string,
  participants: ParticipantSpec[],
  schedule: Schedule,
  options: { settleMs?: number; deadlineMs?: number } = {},
): Promise<RunResult> {
  const { settleMs = 2000, deadlineMs = 60_000 } = options;
  const withKills = schedule.kills.length > 0;
  using control = SharedMemory.create({
    name: testName("sched"),
    size: participants.length * SLOT_WORDS * 4,
  });
  const children: Deno.ChildProcess[] = [];
  const outputs: Promise<string>[] = [];
  const trace: string[] = [];
  const killed: { process: number; step: string; previous: string | undefined }[] = [];
  const lastGranted = new Map<number, string>();
  let stuck: string | undefined;
  try {
    const words = control.view(Int32Array, 0, control.size / 4);
    const bytes = control.view(Uint8Array, 0, control.size);
    for (const [index, spec] of participants.entries()) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          PARTICIPANT,
          control.name,
          String(index),
          spec.role,
          kind,
          objectName,
          String(spec.count),
        ],
        // Without kills, a lost wake-up must not be covered up by the end of a slice.
        env: { DENO_IPC_WAIT_SLICE_MS: withKills ? "200" : "60000" },
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      children.push(child);
      outputs.push(new Response(child.stdout).text());
    }
    const exited = children.map(() => false);
    children.forEach((child, i) => child.status.then(() => exited[i] = true));
    const stepOf = (i: number) => {
      const base = i * SLOT_WORDS;
      return decoder.decode(bytes.subarray((base + 4) * 4, (base + 4) * 4 + words[base + 2]));
    };
    const state = (i: number) => Atomics.load(words, i * SLOT_WORDS);
    const sleeping = new Set<number>();
    // Reports (slot word 3) already answered with a grant: a participant waits at a new
    // step once it has reported more than that.
    const answered = new Map<number, number>();
    const reports = (i: number) => Atomics.load(words, i * SLOT_WORDS + 3);
    let decision = 0;
    let idleSince = performance.now();
    const deadline = performance.now() + deadlineMs;
    const finished = (i: number) => exited[i] || state(i) === STATE_DONE;

    const untilReported = async (i: number): Promise<void> => {
      const until = Math.min(deadline, performance.now() + 5 * settleMs);
      while (performance.now() < until) {
        if (finished(i) || reports(i) > (answered.get(i) ?? 0)) return;
        await delay(0);
      }
    };

    // Start together: every participant waits at its first step before the first choice,
    // so a schedule means the same thing however fast each process started.
    while (
      performance.now() < deadline && !children.every((_, i) => finished(i) || reports(i) > 0)
    ) await delay(1);

    while (!children.every((_, i) => finished(i))) {
      if (performance.now() > deadline) {
        const states = children.map((_, i) =>
          `P${i}: ${
            finished(i) ? "finished" : sleeping.has(i) ? "sleeping" : `state ${state(i)}`
          }, reports ${reports(i)}, answered ${answered.get(i) ?? 0}, at ${stepOf(i)}`
        );
        stuck = `no progress within ${deadlineMs} ms (${states.join("; ")})`;
        break;
      }
      const waiting: number[] = [];
      for (let i = 0; i < children.length; i++) {
        if (finished(i)) continue;
        if (reports(i) > (answered.get(i) ?? 0)) {
          waiting.push(i);
          sleeping.delete(i);
        }
      }
      if (waiting.length === 0) {
        const running = children.some((_, i) => !finished(i) && !sleeping.has(i));
        if (!running && !withKills && performance.now() - idleSince > settleMs) {
          stuck = `lost wake-up: ${[...sleeping].map((i) => `P${i}`).join(", ")} sleep ` +
            `and nobody runs`;
          break;
        }
        await delay(1);
        continue;
      }
      idleSince = performance.now();
      const choice = schedule.choices.length === 0
        ? 0
        : schedule.choices[decision % schedule.choices.length];
      const picked = waiting[choice % waiting.length];
      const step = stepOf(picked);
      if (schedule.kills.some((kill) => kill.at === decision)) {
        children[picked].kill("SIGKILL");
        await children[picked].status;
        exited[picked] = true;
        killed.push({ process: picked, step, previous: lastGranted.get(picked) });
        trace.push(`kill P${picked} at ${step}`);
      } else {
        trace.push(`P${picked} ${step}`);
        lastGranted.set(picked, step);
        answered.set(picked, reports(picked));
        if (step === "wait.sleep") sleeping.add(picked);
        Atomics.add(words, picked * SLOT_WORDS + 1, 1);
        // Let it run to its next step (or to sleep) before choosing again.
        if (step !== "wait.sleep") await untilReported(picked);
      }
      decision++;
    }
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
    await Promise.all(children.map((child) => child.status));
    control.unlink();
  }
  const events: Event[] = [];
  for (const [process, output] of (await Promise.all(outputs)).entries()) {
    for (const line of output.split("\n")) {
      if (line.trim() === "") continue;
      try {
        events.push({ process, ...JSON.parse(line) });
      } catch { /* a line cut by a kill */ }
    }
  }
  return { events, trace, killed, stuck };
}

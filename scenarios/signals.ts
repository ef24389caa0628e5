// Signals between processes. A parent starts a worker that listens; it hands the worker
// jobs through shared memory and rings a doorbell (SIGUSR2) for each, quickly enough
// that signals coalesce, yet the worker counts every job. Then it asks the worker to
// stop with SIGTERM, which the worker handles: it cleans up and exits 0. A second worker
// has no listener: the same SIGTERM kills it by the default action.
//
//   deno run -A --unstable-net scenarios/signals.ts
import { defaultAction, Doorbell, sendSignal, SharedMemory, waitForSignal } from "../mod.ts";
import { scenarioArgs, spawnRole, trace, traceEvent } from "./_common.ts";

const JOBS = 12;
const SLOT = 32;
const { role, values } = scenarioArgs();
const JOBS_SHM = "jobs (shm)";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (role === "worker") {
  using bell = Doorbell.open({ name: values.bell });
  using jobs = SharedMemory.open({ name: values.jobs });
  const decoder = new TextDecoder();
  let done = 0;
  let rings = 0;
  using _listening = bell.listen((events) => {
    rings++;
    const texts = [];
    for (let i = 0; i < events; i++, done++) {
      const slot = jobs.bytes.subarray(done * SLOT, (done + 1) * SLOT);
      texts.push(decoder.decode(slot.subarray(0, slot.indexOf(0))));
    }
    for (const text of texts) traceEvent(role, "receive", { object: JOBS_SHM, label: text });
    trace(role, `ring ${rings}: ${events} new job(s): ${texts.join(", ")}`);
  });
  const stop = waitForSignal("SIGTERM");
  trace(role, "listening for SIGUSR2 (doorbell) and SIGTERM (stop)");
  await stop;
  trace(role, `SIGTERM: did ${done} jobs from ${rings} rings; cleaning up and exiting 0`);
} else if (role === "plain-worker") {
  trace("worker 2", "no listener installed: SIGTERM will get its default action");
  await sleep(30_000);
} else {
  using jobs = SharedMemory.create({ size: JOBS * SLOT });
  using bell = Doorbell.create(); // rings with SIGUSR2 (SIGUSR1 starts Deno's debugger)
  traceEvent("main", "create", { object: JOBS_SHM, label: `${JOBS} slots` });
  try {
    const worker = spawnRole(import.meta.url, "worker", { bell: bell.name, jobs: jobs.name });
    while (bell.receiver === 0) await sleep(5); // ring only once it listens
    const encoder = new TextEncoder();
    for (let i = 0; i < JOBS; i++) {
      encoder.encodeInto(`job ${i + 1}`, jobs.bytes.subarray(i * SLOT, (i + 1) * SLOT));
      traceEvent("main", "send", { object: JOBS_SHM, label: `job ${i + 1}` });
      traceEvent("main", "signal", { peer: "worker", label: "SIGUSR2 (doorbell)" });
      bell.ring(); // bump the counter in shared memory, then kill(worker, SIGUSR2)
      if (i % 4 === 3) await sleep(20); // bursts of four: rings in a burst coalesce
    }
    trace("main", `rang ${JOBS} times in bursts of 4`);
    while (bell.rung !== JOBS || bell.receiver === 0) await sleep(5);
    await sleep(50);
    traceEvent("main", "signal", {
      peer: "worker",
      label: "SIGTERM",
      text: `kill(${worker.pid}, SIGTERM): it listens, so it decides what happens`,
    });
    sendSignal(worker.pid, "SIGTERM");
    const first = await worker.status;
    trace("main", `worker 1 exited with code ${first.code} (signal: ${first.signal ?? "none"})`);

    const plain = spawnRole(import.meta.url, "plain-worker");
    await sleep(300);
    traceEvent("main", "signal", {
      peer: "worker 2",
      label: "SIGTERM",
      text: `kill(${plain.pid}, SIGTERM): default action is "${defaultAction("SIGTERM")}"`,
    });
    sendSignal(plain.pid, "SIGTERM");
    const second = await plain.status;
    trace("main", `worker 2 exited with code ${second.code}, killed by ${second.signal}`);
    if (first.code !== 0 || second.signal !== "SIGTERM") throw new Error("unexpected outcome");
  } finally {
    jobs.unlink();
    traceEvent("main", "unlink", { object: JOBS_SHM });
    bell.unlink();
  }
}

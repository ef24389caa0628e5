// Imported first by child programs: makes the child die, or stop, at a named step of a
// protocol operation (lib/_steps.ts), so that a test knows its kill landed inside that
// step and not around it. Set by the parent in the child's environment:
//   DENO_IPC_CRASH_AT     the step name, e.g. "ring.send.copied"
//   DENO_IPC_CRASH_AFTER  die at that step's Nth occurrence (default 1)
//   DENO_IPC_CRASH_SIGNAL KILL (default) or STOP (the child stops there until SIGCONT)
//   DENO_IPC_CRASH_ANNOUNCE  when set, the child prints "stopped STEP" before it stops
//                            (the parent waits for that line)
//   DENO_IPC_RING_START   where new rings' positions start (see lib/_testing.ts)
import { libc } from "../../ffi/libc.ts";
import { setStepHook } from "../../lib/_steps.ts";
import { testing } from "../../lib/_testing.ts";

const SIGNALS: Record<string, number> = { KILL: 9, STOP: 19 };

const at = Deno.env.get("DENO_IPC_CRASH_AT");
if (at) {
  let remaining = Number(Deno.env.get("DENO_IPC_CRASH_AFTER") ?? "1");
  const signal = SIGNALS[Deno.env.get("DENO_IPC_CRASH_SIGNAL") ?? "KILL"];
  if (signal === undefined) throw new Error("DENO_IPC_CRASH_SIGNAL must be KILL or STOP");
  const announce = signal === SIGNALS.STOP && Deno.env.get("DENO_IPC_CRASH_ANNOUNCE") !== undefined;
  setStepHook((step) => {
    if (step !== at || --remaining !== 0) return;
    if (announce) console.log(`stopped ${step}`);
    libc().symbols.raise(signal);
  });
}

const start = Deno.env.get("DENO_IPC_RING_START");
if (start) testing.ringStartPosition = Number(start);

// Appends `count` structured trace events through scenarios/_common.ts (the trace file
// comes from DENO_IPC_TRACE), each with `size` characters of filler, starting at the
// wall-clock time `start` (ms) so that several children append at the same moment.
import { traceEvent } from "../../scenarios/_common.ts";

const [role, count, size, start] = Deno.args;
const filler = "x".repeat(Number(size));
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(start) - Date.now())));
for (let i = 0; i < Number(count); i++) {
  traceEvent(role, "send", { object: `object of ${role}`, peer: filler, label: `${i} ${filler}` });
}

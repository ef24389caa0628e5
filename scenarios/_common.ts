// Shared by the scenarios: readable traces (text lines, and structured events for the
// sequence diagrams) and running a script's other roles as separate processes.
import { parseArgs } from "node:util";
import { diagramBase, writeDiagrams } from "./_diagram.ts";
import {
  appendEvent,
  makeEvent,
  TRACE_VARIABLE,
  type TraceFields,
  type TraceKind,
} from "./_trace.ts";

export { now } from "./_trace.ts";

/**
 * Parsed `--role` and other `--key value` arguments of this process. In the main role,
 * `--diagram FILE` starts recording the run (see {@link startDiagram}).
 */
export function scenarioArgs(): { role: string; values: Record<string, string> } {
  const { values } = parseArgs({
    args: Deno.args,
    strict: false,
    options: { role: { type: "string" }, diagram: { type: "string" } },
  });
  const strings = Object.fromEntries(
    Object.entries(values).map(([key, value]) => [key, String(value)]),
  );
  const role = strings.role ?? "main";
  if (role === "main" && strings.diagram) startDiagram(strings.diagram);
  return { role, values: strings };
}

let traceFile: string | undefined | null = null; // null: not looked up yet

function currentTraceFile(): string | undefined {
  if (traceFile === null) {
    const allowed = Deno.permissions.querySync({ name: "env", variable: TRACE_VARIABLE });
    traceFile = allowed.state === "granted" ? Deno.env.get(TRACE_VARIABLE) || undefined : undefined;
  }
  return traceFile;
}

/**
 * Records this run for a diagram: events go to `BASE.jsonl` (the environment variable
 * DENO_IPC_TRACE tells the role processes started later), and when this process exits,
 * `BASE.mmd`, `BASE.md` and `BASE.svg` are written from them. `file` may name any of
 * these files or the base itself.
 */
export function startDiagram(file: string): void {
  const base = diagramBase(file);
  const path = `${base}.jsonl`;
  Deno.writeTextFileSync(path, "", { mode: 0o600 });
  Deno.env.set(TRACE_VARIABLE, path);
  traceFile = path;
  const script = new URL(Deno.mainModule).pathname.split("/").pop();
  globalThis.addEventListener("unload", () => {
    const files = writeDiagrams(base, `scenarios/${script}`);
    console.log(`diagram: ${files.join(", ")}`);
  });
}

function printLine(role: string, message: string): void {
  console.log(`[${role.padEnd(10)} pid ${String(Deno.pid).padStart(7)}] ${message}`);
}

/** Prints one trace line, `[role pid] message`; in a recorded run also a `note` event. */
export function trace(role: string, message: string): void {
  printLine(role, message);
  const file = currentTraceFile();
  if (file !== undefined) appendEvent(file, makeEvent(role, "note", { text: message }));
}

/**
 * Records a structured event (an arrow, a blocking bar, a wake-up...) and prints its
 * `text`, if any, as {@link trace} would. Without a recorded run only the text is printed.
 * `at` (from `now()` of scenarios/_trace.ts) dates an event after the fact, such as the
 * start of a wait that turned out to block.
 *
 *     traceEvent("producer", "send", { object: "buffer", label: "item 1", text: "..." });
 */
export function traceEvent(
  role: string,
  kind: TraceKind,
  fields: TraceFields = {},
  at?: number,
): void {
  if (fields.text !== undefined) printLine(role, fields.text);
  const file = currentTraceFile();
  if (file !== undefined) appendEvent(file, makeEvent(role, kind, fields, at));
}

/**
 * Starts `script` (a scenario's `import.meta.url`) again as a separate process in
 * `role`, sharing this terminal. Resolves with its exit code.
 */
export function spawnRole(
  script: string,
  role: string,
  values: Record<string, string | number> = {},
): Deno.ChildProcess {
  const args = ["run", "-A", "--unstable-net", new URL(script).pathname, `--role=${role}`];
  for (const [key, value] of Object.entries(values)) args.push(`--${key}=${value}`);
  return new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

/** Runs a role to completion; throws unless it exits 0. */
export async function runRole(
  script: string,
  role: string,
  values: Record<string, string | number> = {},
): Promise<void> {
  const status = await spawnRole(script, role, values).status;
  if (status.code !== 0) throw new Error(`${role} process failed with exit code ${status.code}`);
}

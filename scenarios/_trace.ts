// The scenarios' structured trace: one JSON object per line, appended by every process of
// a run to the file named by DENO_IPC_TRACE. The format is documented in README.md
// ("Sequence diagrams of scenario runs"); scenarios/_diagram.ts draws it.

/** Name of the environment variable that names the trace file of a run. */
export const TRACE_VARIABLE = "DENO_IPC_TRACE";

/** Version of the trace line format, the `v` field of every line. */
export const TRACE_VERSION = 1;

/** What happened, as drawn in a sequence diagram. */
export type TraceKind =
  | "note" // free text on the role's lifeline (what `trace(role, message)` records)
  | "create" // the role created `object`
  | "open" // the role opened an existing `object`
  | "unlink" // the role removed `object`'s name (the object is gone once unused)
  | "send" // the role put `label` into `object`, or sent it straight to `peer`
  | "receive" // the role took `label` out of `object`, or got it straight from `peer`
  | "block" // the role waits (on `object`, for the reason in `label`)
  | "wake" // the role stops waiting
  | "signal" // the role sent signal `label` to process `peer`
  | "move" // the role moved a right (`label`) to `peer` through `object`
  | "summary"; // the role sent `count` messages like `label` to `object` or `peer`

/** Every kind, in the order the README documents them. */
export const TRACE_KINDS: readonly TraceKind[] = [
  "note",
  "create",
  "open",
  "unlink",
  "send",
  "receive",
  "block",
  "wake",
  "signal",
  "move",
  "summary",
];

/** One line of the trace file. */
export interface TraceEvent {
  /** Format version: {@link TRACE_VERSION}. */
  v: number;
  /** Wall-clock time in milliseconds (fractional), comparable across processes. */
  t: number;
  /** The process that recorded the event. */
  pid: number;
  /** The process's role in the scenario: its lifeline. */
  role: string;
  kind: TraceKind;
  /** The kernel object involved: its own lifeline. */
  object?: string;
  /** The other process involved (receiver of a signal or a direct message). */
  peer?: string;
  /** Short label for the arrow or note (usually the payload). */
  label?: string;
  /** The text line the process printed for this event. */
  text?: string;
  /** How many messages a `summary` stands for. */
  count?: number;
}

/** The fields a scenario gives; time, pid and version are filled in. */
export type TraceFields = Omit<TraceEvent, "v" | "t" | "pid" | "role" | "kind">;

const OPTIONAL_STRINGS = ["object", "peer", "label", "text"] as const;

/** Longest text kept in a field: keeps a line well under PIPE_BUF (4096 bytes). */
const FIELD_LIMIT = 600;

function clip(text: string | undefined): string | undefined {
  if (text === undefined || text.length <= FIELD_LIMIT) return text;
  return text.slice(0, FIELD_LIMIT - 1) + "…";
}

/** Wall-clock milliseconds, fractional: the clock of the `t` field. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Builds an event stamped with now and this process's pid. */
export function makeEvent(
  role: string,
  kind: TraceKind,
  fields: TraceFields = {},
  at: number = now(),
): TraceEvent {
  const event: TraceEvent = {
    v: TRACE_VERSION,
    t: Math.round(at * 1000) / 1000,
    pid: Deno.pid,
    role: clip(role)!,
    kind,
  };
  for (const key of OPTIONAL_STRINGS) {
    const value = clip(fields[key]);
    if (value !== undefined) event[key] = value;
  }
  if (fields.count !== undefined) event.count = fields.count;
  return event;
}

/** Longest line in bytes: appends of up to PIPE_BUF (4096) bytes are never split. */
export const MAX_LINE_BYTES = 4000;

/**
 * One trace line: JSON and a newline, at most {@link MAX_LINE_BYTES} bytes (the longest
 * text fields are shortened until it fits), so that it is appended in one write.
 */
export function formatEvent(event: TraceEvent): string {
  const encoder = new TextEncoder();
  const shortened = { ...event };
  for (;;) {
    const line = JSON.stringify(shortened) + "\n";
    if (encoder.encode(line).length <= MAX_LINE_BYTES) return line;
    const longest = (["role", ...OPTIONAL_STRINGS] as const)
      .filter((key) => shortened[key] !== undefined)
      .reduce((a, b) => (shortened[a]!.length >= shortened[b]!.length ? a : b));
    const text = shortened[longest]!;
    shortened[longest] = text.slice(0, Math.floor(text.length / 2)) + "…";
  }
}

/**
 * Appends one event to `path` with a single `write` on an O_APPEND descriptor: lines from
 * several processes never interleave (the kernel serialises appends to one file).
 */
export function appendEvent(path: string, event: TraceEvent): void {
  const bytes = new TextEncoder().encode(formatEvent(event));
  using file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/** Thrown for a trace line that is not a valid event. */
export class TraceFormatError extends Error {
  override name = "TraceFormatError";
}

/** Checks one parsed line; throws TraceFormatError naming the line and the bad field. */
export function validateEvent(value: unknown, line = 0): TraceEvent {
  const fail = (why: string): never => {
    throw new TraceFormatError(`trace line ${line}: ${why}`);
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail("not an object");
  const event = value as Record<string, unknown>;
  if (event.v !== TRACE_VERSION) fail(`unknown version ${JSON.stringify(event.v)}`);
  if (typeof event.t !== "number" || !Number.isFinite(event.t)) fail("t is not a number");
  if (!Number.isSafeInteger(event.pid)) fail("pid is not an integer");
  if (typeof event.role !== "string" || event.role === "") fail("role is not a name");
  if (!TRACE_KINDS.includes(event.kind as TraceKind)) fail(`unknown kind ${event.kind}`);
  for (const key of OPTIONAL_STRINGS) {
    if (event[key] !== undefined && typeof event[key] !== "string") fail(`${key} is not text`);
  }
  if (event.count !== undefined && !Number.isSafeInteger(event.count)) fail("count");
  const kind = event.kind as TraceKind;
  const needsObject = ["create", "open", "unlink"].includes(kind);
  if (needsObject && event.object === undefined) fail(`${kind} without an object`);
  if (kind === "signal" && event.peer === undefined) fail("signal without a peer");
  if (["send", "receive", "move", "summary"].includes(kind) && !event.object && !event.peer) {
    fail(`${kind} without an object or a peer`);
  }
  if (kind === "summary" && event.count === undefined) fail("summary without a count");
  return event as unknown as TraceEvent;
}

/** Parses a whole trace file (JSON lines; blank lines ignored). */
export function parseTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new TraceFormatError(`trace line ${index + 1}: not JSON`);
    }
    events.push(validateEvent(value, index + 1));
  });
  return events;
}

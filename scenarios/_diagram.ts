// Sequence diagrams of scenario runs: the trace events of scenarios/_trace.ts turned into
// a diagram model (lifelines and steps, top to bottom), then into Mermaid text and
// Markdown. scenarios/_diagram_svg.ts draws the same model as SVG.
import { parseTrace, type TraceEvent, type TraceKind } from "./_trace.ts";
import { toSvg } from "./_diagram_svg.ts";

/** A lifeline: a process (a scenario role) or a kernel object. */
export interface Participant {
  /** Identifier used in Mermaid and in the SVG's `data-id`: P0, P1, ... O0, O1, ... */
  id: string;
  /** The role or object name from the trace. */
  name: string;
  kind: "process" | "object";
  /** Text shown in the lifeline's box: the name, and the pids for a process. */
  label: string;
}

/** How an arrow is drawn. */
export type ArrowStyle = "solid" | "dashed" | "async" | "cross";

/** A message or an operation on an object, drawn from one lifeline to another. */
export interface ArrowStep {
  type: "arrow";
  from: string;
  to: string;
  label: string;
  style: ArrowStyle;
  kind: TraceKind;
  t: number;
}

/** One row of the diagram, in time order. */
export type Step =
  | ArrowStep
  | { type: "note"; over: string[]; text: string; tone: "note" | "blocked" | "woken"; t: number }
  | { type: "activate" | "deactivate"; participant: string; t: number }
  | { type: "loop"; label: string; arrow: ArrowStep; t: number };

/** A whole diagram: lifelines left to right, steps top to bottom. */
export interface Diagram {
  title: string;
  participants: Participant[];
  steps: Step[];
  /** Time of the first event (ms), the origin of the times shown in the SVG. */
  start: number;
}

/** Diagrams longer than this many steps keep their beginning and end only. */
export const MAX_STEPS = 240;

/**
 * Time order, corrected for causality. Each process stamps its own events, a little after
 * they happened, so a receiver can stamp "received m" before the sender stamps "sent m".
 * Two rules put effects after causes:
 * - a receive (and the wake just before it) follows the send of the same label into the
 *   same object, first sent first matched;
 * - a wake from a block on an object follows the first thing another process did to that
 *   object after the block began (the receive that made room, the send that filled it)
 *   and not already taken as the cause of an earlier wake.
 * A rule is not applied where it would contradict the others (a cycle: two processes that
 * each reported waiting for the other). Otherwise events keep their time order, and each
 * process its own order.
 */
export function causalOrder(events: readonly TraceEvent[]): TraceEvent[] {
  const sorted = events.map((event, index) => ({ event, index }))
    .sort((a, b) => a.event.t - b.event.t || a.index - b.index).map(({ event }) => event);
  const queues = new Map<number, number[]>(); // pid -> its events, in order
  const previous: (number | undefined)[] = []; // the same process's event before
  sorted.forEach((event, i) => {
    const queue = queues.get(event.pid) ?? [];
    previous[i] = queue[queue.length - 1];
    queue.push(i);
    queues.set(event.pid, queue);
  });
  const after = new Map<number, number[]>(); // event -> the events it must follow
  /** Whether `event` already (transitively) follows `target`. */
  const follows = (event: number, target: number): boolean => {
    const seen = new Set<number>();
    const stack = [event];
    while (stack.length > 0) {
      const current = stack.pop()!;
      if (current === target) return true;
      if (seen.has(current)) continue;
      seen.add(current);
      const before = previous[current];
      if (before !== undefined) stack.push(before);
      stack.push(...after.get(current) ?? []);
    }
    return false;
  };
  const follow = (event: number, cause: number): boolean => {
    if (cause === event || follows(cause, event)) return false;
    after.set(event, [...after.get(event) ?? [], cause]);
    return true;
  };

  const key = (event: TraceEvent) => `${event.object}\u0000${event.label ?? ""}`;
  const sends = new Map<string, number[]>();
  sorted.forEach((event, i) => {
    if (event.kind !== "send" || event.object === undefined) return;
    const list = sends.get(key(event)) ?? [];
    list.push(i);
    sends.set(key(event), list);
  });
  sorted.forEach((event, i) => {
    if (event.kind !== "receive" || event.object === undefined) return;
    const send = sends.get(key(event))?.shift();
    if (send === undefined || !follow(i, send)) return;
    const before = previous[i];
    if (before !== undefined && sorted[before].kind === "wake") follow(before, send);
  });

  const blockedAt = new Map<number, number>(); // pid -> its pending block
  const claimed = new Set<number>(); // events already taken as the cause of a wake
  sorted.forEach((event, i) => {
    if (event.kind === "block") blockedAt.set(event.pid, i);
    if (event.kind !== "wake") return;
    const block = blockedAt.get(event.pid);
    blockedAt.delete(event.pid);
    if (block === undefined) return;
    for (let j = block + 1; j < sorted.length; j++) {
      const other = sorted[j];
      if (claimed.has(j) || other.pid === event.pid) continue;
      if (other.object !== sorted[block].object) continue;
      if (other.kind !== "send" && other.kind !== "receive") continue;
      if (follow(i, j)) {
        claimed.add(j);
        break;
      }
    }
  });

  const done = new Set<number>();
  const heads = [...queues.values()];
  const result: TraceEvent[] = [];
  while (result.length < sorted.length) {
    let best: number[] | undefined;
    for (const queue of heads) {
      if (queue.length === 0) continue;
      if ((after.get(queue[0]) ?? []).some((cause) => !done.has(cause))) continue;
      if (best === undefined || queue[0] < best[0]) best = queue;
    }
    const next = best!.shift()!; // acyclic: some head is always free
    done.add(next);
    result.push(sorted[next]);
  }
  return result;
}

/** Builds the diagram model of a run from its events. */
export function buildDiagram(title: string, events: readonly TraceEvent[]): Diagram {
  const ordered = causalOrder(events);
  const participants = new Map<string, Participant>();
  const pids = new Map<string, Set<number>>();
  let processes = 0;
  let objects = 0;
  const lifeline = (name: string, kind: Participant["kind"]): string => {
    const key = `${kind}:${name}`;
    let participant = participants.get(key);
    if (participant === undefined) {
      const id = kind === "process" ? `P${processes++}` : `O${objects++}`;
      participant = { id, name, kind, label: name };
      participants.set(key, participant);
    }
    return participant.id;
  };
  const process = (event: TraceEvent, name = event.role): string => {
    if (name === event.role) {
      const set = pids.get(name) ?? new Set();
      set.add(event.pid);
      pids.set(name, set);
    }
    return lifeline(name, "process");
  };
  const active = new Set<string>();
  const steps: Step[] = [];
  for (const event of ordered) {
    const { t } = event;
    const me = process(event);
    const object = event.object === undefined ? undefined : lifeline(event.object, "object");
    const peer = event.peer === undefined ? undefined : process(event, event.peer);
    const label = event.label ?? "";
    const arrow = (from: string, to: string, text: string, style: ArrowStyle) =>
      steps.push({ type: "arrow", from, to, label: text, style, kind: event.kind, t });
    switch (event.kind) {
      case "note":
        steps.push({ type: "note", over: [me], text: event.text ?? label, tone: "note", t });
        break;
      case "create":
        arrow(me, object!, label ? `create: ${label}` : "create", "dashed");
        break;
      case "open":
        arrow(me, object!, label ? `open: ${label}` : "open", "dashed");
        break;
      case "unlink":
        arrow(me, object!, label ? `unlink: ${label}` : "unlink", "cross");
        break;
      case "send":
        arrow(me, object ?? peer!, label, "solid");
        break;
      case "receive":
        arrow(object ?? peer!, me, label, "solid");
        break;
      case "signal":
        arrow(me, peer!, label, "async");
        break;
      case "move":
        if (object !== undefined) arrow(me, object, `right: ${label}`, "solid");
        if (peer !== undefined) arrow(object ?? me, peer, `right: ${label}`, "solid");
        break;
      case "block":
        if (!active.has(me)) {
          active.add(me);
          steps.push({ type: "activate", participant: me, t });
        }
        steps.push({ type: "note", over: [me], text: `blocked: ${label}`, tone: "blocked", t });
        break;
      case "wake":
        if (label) {
          steps.push({ type: "note", over: [me], text: `woken: ${label}`, tone: "woken", t });
        }
        if (active.delete(me)) steps.push({ type: "deactivate", participant: me, t });
        break;
      case "summary": {
        const to = object ?? peer!;
        const loop = `${(event.count ?? 0).toLocaleString("en-US")} times (summarised)`;
        steps.push({
          type: "loop",
          label: loop,
          arrow: { type: "arrow", from: me, to, label, style: "solid", kind: "send", t },
          t,
        });
        if (event.text) steps.push({ type: "note", over: [me], text: event.text, tone: "note", t });
        break;
      }
    }
  }
  for (const participant of active) steps.push({ type: "deactivate", participant, t: Infinity });
  for (const participant of participants.values()) {
    const set = pids.get(participant.name);
    if (participant.kind === "process" && set !== undefined && set.size > 0) {
      const list = [...set];
      participant.label = `${participant.name} (pid${list.length > 1 ? "s" : ""} ${
        list.length > 3 ? `${list.slice(0, 3).join(", ")}, …` : list.join(", ")
      })`;
    }
  }
  return {
    title,
    participants: [...participants.values()],
    steps: shorten(steps),
    start: ordered.length > 0 ? Math.min(...ordered.map((event) => event.t)) : 0,
  };
}

/** Keeps the first and last steps of a very long diagram, activations kept balanced. */
function shorten(steps: Step[]): Step[] {
  if (steps.length <= MAX_STEPS) return steps;
  const head = steps.slice(0, MAX_STEPS - 40);
  const tail = steps.slice(steps.length - 40);
  const at = head[head.length - 1].t;
  const active = new Set<string>();
  for (const step of head) {
    if (step.type === "activate") active.add(step.participant);
    if (step.type === "deactivate") active.delete(step.participant);
  }
  const closing = [...active].map((participant): Step => ({
    type: "deactivate",
    participant,
    t: at,
  }));
  const opened = new Set<string>();
  const balancedTail = tail.filter((step) => {
    if (step.type === "activate") opened.add(step.participant);
    return step.type !== "deactivate" || opened.delete(step.participant);
  });
  const omitted = steps.length - head.length - tail.length;
  return [
    ...head,
    ...closing,
    { type: "note", over: ["P0"], text: `… ${omitted} more steps omitted …`, tone: "note", t: at },
    ...balancedTail,
  ];
}

const MERMAID_ARROWS: Record<ArrowStyle, string> = {
  solid: "->>",
  dashed: "-->>",
  async: "-)",
  cross: "--x",
};

/**
 * Text as Mermaid shows it literally: `#` and `;` would start entity codes and statement
 * ends, `<` and `>` HTML; line breaks end a statement.
 */
export function mermaidText(text: string): string {
  const codes: Record<string, string> = { "#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;" };
  return text.replace(/[\r\n]+/g, " ").replace(/[#;<>]/g, (c) => codes[c]).trim();
}

/** The diagram as a Mermaid `sequenceDiagram`. */
export function toMermaid(diagram: Diagram): string {
  const lines = ["sequenceDiagram"];
  for (const participant of diagram.participants) {
    lines.push(`  participant ${participant.id} as ${mermaidText(participant.label)}`);
  }
  const arrowLine = (step: ArrowStep, indent: string) =>
    `${indent}${step.from}${MERMAID_ARROWS[step.style]}${step.to}: ${mermaidText(step.label)}`;
  for (const step of diagram.steps) {
    switch (step.type) {
      case "arrow":
        lines.push(arrowLine(step, "  "));
        break;
      case "note":
        lines.push(
          step.tone === "note"
            ? `  Note over ${step.over.join(",")}: ${mermaidText(step.text)}`
            : `  Note right of ${step.over[0]}: ${mermaidText(step.text)}`,
        );
        break;
      case "activate":
      case "deactivate":
        lines.push(`  ${step.type} ${step.participant}`);
        break;
      case "loop":
        lines.push(`  loop ${mermaidText(step.label)}`, arrowLine(step.arrow, "    "), "  end");
        break;
    }
  }
  return lines.join("\n") + "\n";
}

/** A Markdown page showing the Mermaid diagram (GitHub renders it) and linking the SVG. */
export function toMarkdown(diagram: Diagram, svgFile?: string): string {
  return [
    `# ${diagram.title}`,
    "",
    "```mermaid",
    toMermaid(diagram).trimEnd(),
    "```",
    ...(svgFile ? ["", `Drawn without Mermaid: [${svgFile}](${svgFile})`] : []),
    "",
  ].join("\n");
}

/** Strips a known diagram extension: `out/run.svg` and `out/run` name the same files. */
export function diagramBase(file: string): string {
  return file.replace(/\.(mmd|md|svg|jsonl)$/, "");
}

/**
 * Reads the trace `base.jsonl` and writes `base.mmd`, `base.md` and `base.svg`.
 * Returns the paths written.
 */
export function writeDiagrams(base: string, title: string): string[] {
  const events = parseTrace(Deno.readTextFileSync(`${base}.jsonl`));
  const diagram = buildDiagram(title, events);
  const svgName = `${base.split("/").pop()}.svg`;
  const files: [string, string][] = [
    [`${base}.mmd`, toMermaid(diagram)],
    [`${base}.md`, toMarkdown(diagram, svgName)],
    [`${base}.svg`, toSvg(diagram)],
  ];
  for (const [path, text] of files) Deno.writeTextFileSync(path, text);
  return files.map(([path]) => path);
}

#!/usr/bin/env -S deno run -A
/**
 * `ipc`: list, inspect, watch and clean up IPC objects.
 *
 * Run it as `deno task ipc ...`, or install it: `deno install -g -A -n ipc cli.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  cleanupDead,
  type CleanupResult,
  inspectObject,
  type IpcObject,
  listObjects,
  OBJECT_KINDS,
} from "./lib/introspect.ts";

const HELP = `ipc: list, inspect, watch and clean up IPC objects (deno-ipc)

Usage:
  ipc list [--kind K]... [--dead] [--json]   every object: kind, name, size, creator, state,
                                             attached processes, depth
  ipc inspect NAME [--json]                  everything its header says
  ipc watch NAME [--interval MS] [--count N] live rates until Ctrl-C
  ipc clean [--dry-run] [--yes] [--json]     remove what belongs only to dead processes
  ipc help                                   this text

  --match PREFIX (list, clean; repeatable)   only objects whose name starts with PREFIX

NAME is "/name" (shared memory, semaphores, POSIX queues) or "sysv:ID" (System V queues).
Control characters in names are printed as \\xNN, and \\ as \\\\ (--json keeps them as they are).
Kinds: ${OBJECT_KINDS.join(", ")}.
States: live, dead, initializing, removing, corrupted, other-user, unknown.

Exit status: 0 success, 1 error, 2 usage error.
--json prints the objects of lib/introspect.ts (IpcObject, CleanupResult): stable fields.`;

class UsageError extends Error {}

/**
 * `text` with its control characters as `\xNN`: object names come from /dev/shm, where
 * any process may put a newline (a fake row) or a terminal escape sequence.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f\\]/g,
    (c) => c === "\\" ? "\\\\" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

const KINDS = OBJECT_KINDS;

/** Runs the command with `args`; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  try {
    const [command, ...rest] = args;
    switch (command) {
      case "list":
        return list(rest);
      case "inspect":
        return inspect(rest);
      case "watch":
        return await watch(rest);
      case "clean":
        return clean(rest);
      case "help":
      case "--help":
      case "-h":
        console.log(HELP);
        return 0;
      case undefined:
        throw new UsageError("a command is needed (list, inspect, watch, clean, help)");
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`ipc: ${printable(error.message)} (see "ipc help")`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    console.error(`ipc: ${printable(message.split("\n")[0])}`);
    return 1;
  }
}

function parse<T extends Record<string, { type: "boolean" | "string"; multiple?: boolean }>>(
  args: string[],
  options: T,
  positionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.split("\n")[0] : String(error));
  }
  if (parsed.positionals.length !== positionals) {
    throw new UsageError(
      positionals === 0
        ? `unexpected argument "${parsed.positionals[0]}"`
        : parsed.positionals.length === 0
        ? "a NAME is needed"
        : `unexpected argument "${parsed.positionals[1]}"`,
    );
  }
  return parsed;
}

function list(args: string[]): number {
  const { values } = parse(args, {
    kind: { type: "string", multiple: true },
    dead: { type: "boolean" },
    json: { type: "boolean" },
    match: { type: "string", multiple: true },
  }, 0);
  const kinds = values.kind as string[] | undefined;
  const unknown = kinds?.find((kind) => !KINDS.includes(kind));
  if (unknown !== undefined) throw new UsageError(`unknown kind "${unknown}"`);
  let objects = listObjects(kinds === undefined ? {} : { kinds })
    .filter((o) => matches(values.match as string[] | undefined, o.name));
  if (values.dead) objects = objects.filter((o) => o.state === "dead");
  if (values.json) {
    console.log(JSON.stringify(objects, null, 2));
    return 0;
  }
  console.log(table(objects));
  return 0;
}

function matches(prefixes: string[] | undefined, name: string): boolean {
  return prefixes === undefined || prefixes.some((prefix) => name.startsWith(prefix));
}

function pids(processes: { pid: number; alive: boolean }[]): string {
  return processes.map((p) => `${p.pid}${p.alive ? "" : "(dead)"}`).join(",");
}

/** The table `ipc list` prints. */
export function table(objects: IpcObject[]): string {
  const rows = [["KIND", "NAME", "SIZE", "CREATOR", "STATE", "ATTACHED", "DEPTH"]];
  for (const o of objects) {
    const attached = pids(o.attached) + (o.untracked > 0 ? `+${o.untracked}` : "");
    rows.push([
      o.kind,
      printable(o.partOf === null ? o.name : `${o.name} (of ${o.partOf})`),
      String(o.size),
      o.creator === null ? "-" : `${o.creator.pid}${o.creator.alive ? "" : "(dead)"}`,
      o.state,
      attached || (o.mappedBy.length > 0 ? `mapped:${o.mappedBy.join(",")}` : "-"),
      o.depth === null ? "-" : `${o.depth} ${o.depthUnit}`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd())
    .join("\n");
}

function inspect(args: string[]): number {
  const { values, positionals } = parse(args, { json: { type: "boolean" } }, 1);
  const object = inspectObject(positionals[0]);
  if (values.json) {
    console.log(JSON.stringify(object, null, 2));
    return 0;
  }
  const lines = [
    `${object.kind} ${printable(object.name)}`,
    `  state      ${object.state}${
      object.problem === null ? "" : `: ${printable(object.problem)}`
    }`,
    `  size       ${object.size} bytes, owner uid ${object.uid}, mode 0${object.mode.toString(8)}`,
    `  creator    ${
      object.creator === null
        ? "not recorded"
        : `pid ${object.creator.pid} (${
          object.creator.alive ? "alive" : "dead"
        }), uid ${object.creator.uid}`
    }${object.created === null ? "" : `, ${object.created}`}`,
    `  attached   ${pids(object.attached) || "none"}${
      object.untracked > 0 ? ` and ${object.untracked} untracked` : ""
    }`,
  ];
  if (object.mappedBy.length > 0) lines.push(`  mapped by  ${object.mappedBy.join(", ")}`);
  if (object.partOf !== null) lines.push(`  part of    ${printable(object.partOf)}`);
  if (object.depth !== null) lines.push(`  depth      ${object.depth} ${object.depthUnit}`);
  for (const [key, value] of Object.entries(object.details)) {
    lines.push(`  ${key.padEnd(18)} ${formatValue(value)}`);
  }
  console.log(lines.join("\n"));
  return 0;
}

function formatValue(value: unknown): string {
  if (value === null) return "-";
  if (typeof value === "object" && "pid" in value!) {
    const p = value as { pid: number; alive: boolean };
    return `pid ${p.pid} (${p.alive ? "alive" : "dead"})`;
  }
  return printable(String(value));
}

async function watch(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    interval: { type: "string" },
    count: { type: "string" },
  }, 1);
  const interval = Number(values.interval ?? 1000);
  const count = values.count === undefined ? Infinity : Number(values.count);
  if (!(Number.isInteger(interval) && interval >= 50)) {
    throw new UsageError(`--interval must be an integer of at least 50 ms`);
  }
  if (!(count === Infinity || (Number.isInteger(count) && count >= 1))) {
    throw new UsageError(`--count must be a positive integer`);
  }
  const name = positionals[0];
  const tty = Deno.stdout.isTerminal();
  const encoder = new TextEncoder();
  let stop = false;
  let wake = () => {};
  const onInterrupt = () => {
    stop = true;
    wake(); // now, not at the end of the interval
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    let previous = sample(inspectObject(name), performance.now());
    for (let n = 0; n < count && !stop; n++) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (stop) break;
      const now = sample(inspectObject(name), performance.now());
      const line = rates(name, previous, now);
      previous = now;
      if (tty) await Deno.stdout.write(encoder.encode(`\r\x1b[K${line}`));
      else console.log(line);
    }
    if (tty) console.log();
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
  return 0;
}

interface Sample {
  at: number;
  object: IpcObject;
  sent: number;
  received: number;
  bytes: number;
}

function sample(object: IpcObject, at: number): Sample {
  const number = (key: string) => {
    const value = object.details[key];
    return typeof value === "number" ? value : 0;
  };
  return {
    at,
    object,
    sent: number("sentMessages") || number("rung"),
    received: number("receivedMessages") || number("delivered"),
    bytes: number("sentBytes"),
  };
}

function rates(name: string, before: Sample, after: Sample): string {
  const seconds = (after.at - before.at) / 1000;
  const rate = (a: number, b: number) => Math.max(0, (b - a) / seconds);
  const o = after.object;
  const parts = [
    `${printable(name)} ${o.state}`,
    `sent ${rate(before.sent, after.sent).toFixed(0)}/s`,
    `received ${rate(before.received, after.received).toFixed(0)}/s`,
  ];
  if (after.bytes > 0) parts.push(`${formatBytes(rate(before.bytes, after.bytes))}/s`);
  if (o.depth !== null) parts.push(`depth ${o.depth} ${o.depthUnit}`);
  parts.push(`attached ${o.attached.filter((p) => p.alive).length}`);
  return parts.join("  ");
}

function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes.toFixed(0)} B`;
}

function clean(args: string[]): number {
  const { values } = parse(args, {
    "dry-run": { type: "boolean" },
    yes: { type: "boolean" },
    json: { type: "boolean" },
    match: { type: "string", multiple: true },
  }, 0);
  const prefixes = values.match as string[] | undefined;
  const planned = cleanupDead({ dryRun: true });
  const plan: CleanupResult = {
    removed: planned.removed.filter((e) => matches(prefixes, e.name)),
    kept: planned.kept.filter((e) => matches(prefixes, e.name)),
  };
  let result: CleanupResult = plan;
  if (!values["dry-run"] && plan.removed.length > 0) {
    if (!values.yes) {
      if (!Deno.stdin.isTerminal()) {
        // Part of the error, so on stderr: stdout stays empty (or JSON, with --json).
        printPlan(plan, "would remove", console.error);
        throw new UsageError("not a terminal: pass --yes to remove (or --dry-run)");
      }
      printPlan(plan, "will remove");
      if (!confirm(`Remove ${plan.removed.length} object(s)?`)) return 0;
    }
    result = cleanupDead({ names: plan.removed.map((e) => e.name) });
  }
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
    return 0;
  }
  printPlan(result, values["dry-run"] ? "would remove" : "removed");
  return 0;
}

function printPlan(
  result: CleanupResult,
  verb: string,
  print: (line: string) => void = console.log,
): void {
  if (result.removed.length === 0) print("nothing to remove");
  for (const e of result.removed) {
    print(`${verb} ${e.kind} ${printable(e.name)}: ${printable(e.reason)}`);
  }
  for (const e of result.kept) {
    print(`kept ${e.kind} ${printable(e.name)}: ${printable(e.reason)}`);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

// Shared by the scenarios: readable traces and running a script's other roles as
// separate processes.
import { parseArgs } from "node:util";

/** Parsed `--role` and other `--key value` arguments of this process. */
export function scenarioArgs(): { role: string; values: Record<string, string> } {
  const { values } = parseArgs({ args: Deno.args, strict: false });
  const strings = Object.fromEntries(
    Object.entries(values).map(([key, value]) => [key, String(value)]),
  );
  return { role: strings.role ?? "main", values: strings };
}

/** Prints one trace line: `[role pid] message`. */
export function trace(role: string, message: string): void {
  console.log(`[${role.padEnd(10)} pid ${String(Deno.pid).padStart(7)}] ${message}`);
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

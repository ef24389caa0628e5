// Shared by the Deno benchmark programs: the one-line JSON result the harness reads
// (same fields as bench/c/common.h), and arguments.
import { parseArgs } from "node:util";

/** What every benchmark program prints, as one JSON line. */
export interface BenchResult {
  messages: number;
  bytes: number;
  seconds: number;
  p50_us: number | null;
  p99_us: number | null;
}

/** Prints the result line; `samples` are round-trip times in microseconds. */
export function printResult(
  messages: number,
  bytes: number,
  seconds: number,
  samples?: Float64Array,
): void {
  let p50: number | null = null;
  let p99: number | null = null;
  if (samples && samples.length > 0) {
    samples.sort();
    p50 = samples[Math.floor(samples.length / 2)];
    p99 = samples[Math.floor(samples.length * 0.99)];
  }
  const result: BenchResult = { messages, bytes, seconds, p50_us: p50, p99_us: p99 };
  console.log(JSON.stringify(result));
}

/** `--key=value` arguments of this process. */
export function benchArgs(): Record<string, string> {
  const { values } = parseArgs({ args: Deno.args, strict: false });
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)]));
}

/**
 * The executable and arguments that start a Deno peer process running `args`: under
 * `taskset -c` when the harness places peers on their own CPUs (`--pin=SELF/PEER` sets
 * DENO_IPC_BENCH_PEER_CPUS), as bench/c/common.h does for the C children.
 */
export function peerCommand(args: string[]): [string, string[]] {
  const cpus = Deno.env.get("DENO_IPC_BENCH_PEER_CPUS");
  return cpus ? ["taskset", ["-c", cpus, Deno.execPath(), ...args]] : [Deno.execPath(), args];
}

/** Starts this same script again as the peer process with `args`. */
export function spawnPeer(script: string, args: string[]): Deno.ChildProcess {
  const [executable, argv] = peerCommand([
    "run",
    "-A",
    new URL(script).pathname,
    "--role=peer",
    ...args,
  ]);
  return new Deno.Command(executable, {
    args: argv,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

// The benchmark cases: each runs the same workload as two real processes in Deno and
// in the project's C program. Later transports add their cases here.

/** One workload, in Deno and in C. */
export interface BenchCase {
  /** Shown in the table. */
  name: string;
  /** Deno program (relative to bench/) and its arguments. */
  deno: string[];
  /** C source in bench/c/ (without .c) and its arguments. */
  c: string[];
}

/** All cases; `quick` makes each one shorter (for smoke runs). */
export function benchCases(quick: boolean): BenchCase[] {
  const rounds = quick ? 2_000 : 20_000;
  const total = quick ? 256 * 2 ** 20 : 4 * 2 ** 30;
  const region = 64 * 2 ** 20;
  const shmWrite = (chunk: number): BenchCase => ({
    name: `shm write ${chunk / 1024} KiB (Uint8Array.set vs memcpy)`,
    deno: ["shm_write.ts", `--total=${total}`, `--chunk=${chunk}`, `--region=${region}`],
    c: ["shm_write", String(total), String(chunk), String(region)],
  });
  return [
    {
      name: "named semaphore ping-pong (C: sem_wait)",
      deno: ["sem_pingpong.ts", `--rounds=${rounds}`],
      c: ["sem_pingpong", String(rounds)],
    },
    {
      name: "named semaphore ping-pong (C: same spin)",
      deno: ["sem_pingpong.ts", `--rounds=${rounds}`],
      c: ["sem_pingpong", String(rounds), "spin"],
    },
    shmWrite(64 * 1024),
    shmWrite(1024 * 1024),
  ];
}

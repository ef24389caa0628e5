// The benchmark cases: each runs the same workload as two real processes in Deno and in the
// project's C program; comparisons pair the Deno programs of two cases. Later transports add
// their cases (and comparisons) here.
//
// A case names its Deno program (in bench/) and its C program (bench/c/NAME.c) with their
// arguments for `n` messages. The runner picks n: it starts from `count`, runs both sides as
// a pilot (the warm-up, not counted), and scales n so that every repetition lasts about half
// a second; both sides then run the same n. `step` keeps n a multiple of something.

/** One workload, in Deno and in C. */
export interface BenchCase {
  /** Shown in the table; comparisons refer to cases by it. */
  name: string;
  /** Messages (or round trips) of the first pilot run; the runner scales it. */
  count: number;
  /** The Deno program (relative to bench/) and its arguments, for `n` messages. */
  deno: (n: number) => string[];
  /** The C source in bench/c/ (without .c) and its arguments, for `n` messages. */
  c: (n: number) => string[];
  /** n is rounded up to a multiple of this (default 1). */
  step?: number;
}

/** Two cases whose Deno programs are paired against each other (ratio = a / b). */
export interface BenchComparison {
  name: string;
  /** Name of the first case (the numerator). */
  a: string;
  /** Short label of a's side in the table (e.g. "mailbox"). */
  aLabel: string;
  /** Name of the second case (the denominator). */
  b: string;
  bLabel: string;
}

function label(size: number): string {
  return size < 1024 ? `${size} B` : `${size / 1024} KiB`;
}

const RING = 2 ** 20;

function ring(size: number, capacity = RING, allocate = false): BenchCase {
  return {
    name: `ring ${label(size)} one-way${allocate ? ", receive allocates" : ""}`,
    count: size < 1024 ? 200_000 : 20_000,
    deno: (n) => [
      "ring.ts",
      "--mode=throughput",
      `--size=${size}`,
      `--count=${n}`,
      `--capacity=${capacity}`,
      ...(allocate ? ["--allocate=true"] : []),
    ],
    c: (n) => ["ring", "throughput", String(size), String(n), String(capacity)],
  };
}

function shmWrite(chunk: number): BenchCase {
  const region = 64 * 2 ** 20;
  return {
    name: `shm write ${chunk / 1024} KiB (Uint8Array.set vs memcpy)`,
    count: (256 * 2 ** 20) / chunk,
    deno: (n) => [
      "shm_write.ts",
      `--total=${n * chunk}`,
      `--chunk=${chunk}`,
      `--region=${region}`,
    ],
    c: (n) => ["shm_write", String(n * chunk), String(chunk), String(region)],
  };
}

function pipeCases(size: number, count: number): BenchCase[] {
  const deno = (mode: string) => (n: number) => [
    "pipe.ts",
    `--mode=${mode}`,
    `--size=${size}`,
    `--count=${n}`,
  ];
  const c = (mode: string) => (n: number) => ["pipe", mode, String(size), String(n)];
  return [
    { name: `pipe ${label(size)} one-way`, count, deno: deno("throughput"), c: c("throughput") },
    { name: `fifo ${label(size)} one-way`, count, deno: deno("fifo"), c: c("fifo") },
    {
      name: `Deno.Command stdout ${label(size)} (vs C pipe)`,
      count: count / 10,
      deno: deno("stdio"),
      c: c("throughput"),
    },
  ];
}

function queueCases(kind: "sysv" | "posix"): BenchCase[] {
  const deno = (mode: string, size: number) => (n: number) => [
    "mq.ts",
    `--kind=${kind}`,
    `--mode=${mode}`,
    `--size=${size}`,
    `--count=${n}`,
  ];
  const c = (mode: string, size: number) => (n: number) => [
    "mq",
    kind,
    mode,
    String(size),
    String(n),
  ];
  return [
    ...[64, 4096].map((size) => ({
      name: `${kind} queue ${label(size)} one-way`,
      count: 20_000,
      deno: deno("throughput", size),
      c: c("throughput", size),
    })),
    {
      name: `${kind} queue 64 B round trip`,
      count: 2_000,
      deno: deno("pingpong", 64),
      c: c("pingpong", 64),
    },
  ];
}

function socketCases(transport: "tcp" | "unix"): BenchCase[] {
  return [
    ...[64, 4096].map((size) => ({
      name: `${transport} framed ${label(size)} one-way`,
      count: 20_000,
      deno: (n: number) => [
        "sock.ts",
        "--mode=throughput",
        `--transport=${transport}`,
        `--size=${size}`,
        `--count=${n}`,
      ],
      c: (n: number) => ["sock", "throughput", transport, String(size), String(n)],
    })),
    {
      name: `${transport} RPC call, 64 B (C: framed round trip)`,
      count: 2_000,
      deno: (
        n,
      ) => ["sock.ts", "--mode=rpc", `--transport=${transport}`, "--size=64", `--count=${n}`],
      c: (n) => ["sock", "pingpong", transport, "64", String(n)],
    },
  ];
}

function fileLogCases(size: number, count: number): BenchCase[] {
  return [
    {
      name: `file log ${label(size)} one-way (append per record, inotify)`,
      count,
      deno: (n) => ["file_log.ts", "--mode=throughput", `--size=${size}`, `--count=${n}`],
      c: (n) => ["file_log", "throughput", String(size), String(n)],
    },
    {
      name: `file log baseline: pipe ${label(size)} one-way`,
      count,
      deno: (n) => ["pipe.ts", "--mode=throughput", `--size=${size}`, `--count=${n}`],
      c: (n) => ["pipe", "throughput", String(size), String(n)],
    },
  ];
}

const ALPC_SIZES = [[64, 2_000], [4096, 1_000], [2 ** 20, 20], [64 * 2 ** 20, 2]];

function alpcLabel(size: number): string {
  return size < 2 ** 20 ? label(size) : `${size / 2 ** 20} MiB`;
}

function alpcName(transport: string, size: number): string {
  const c = size > 65536 ? "64 KiB" : alpcLabel(size);
  return `${transport === "alpc" ? "alpc" : "alpc baseline: framed unix"} ${alpcLabel(size)} ` +
    `round trip (C: framed ${c})`;
}

function rpcName(transport: string, size: number): string {
  return `RPC call ${alpcLabel(size)} over ${transport} ` +
    `(C: framed ${size < 1024 ? label(size) : "64 KiB"} round trip)`;
}

/** All cases, in the order they run. */
export function benchCases(): BenchCase[] {
  return [
    ring(64),
    ring(4096, 4 * RING),
    ring(65536, 4 * RING),
    {
      name: "ring 64 B round trip",
      count: 20_000,
      deno: (
        n,
      ) => ["ring.ts", "--mode=pingpong", "--size=64", `--count=${n}`, `--capacity=${RING}`],
      c: (n) => ["ring", "pingpong", "64", String(n), String(RING)],
    },
    ring(64, RING, true),
    {
      name: "bounded buffer (textbook) 64 B one-way",
      count: 100_000,
      deno: (n) => ["bounded_buffer.ts", "--size=64", `--count=${n}`, "--slots=4096"],
      c: (n) => ["bounded_buffer", "64", String(n), "4096"],
    },
    {
      name: "mailbox 64 B one-way (C: ring)",
      count: 200_000,
      deno: (
        n,
      ) => ["mailbox.ts", "--mode=throughput", "--size=64", `--count=${n}`, "--capacity=4096"],
      c: (n) => ["ring", "throughput", "64", String(n), String(RING)],
    },
    {
      name: "mailbox 64 B round trip (C: ring)",
      count: 20_000,
      deno: (
        n,
      ) => ["mailbox.ts", "--mode=pingpong", "--size=64", `--count=${n}`, "--capacity=4096"],
      c: (n) => ["ring", "pingpong", "64", String(n), String(RING)],
    },
    {
      name: "unix socket 64 B one-way",
      count: 50_000,
      deno: (n) => ["uds.ts", "--size=64", `--count=${n}`],
      c: (n) => ["uds", "64", String(n)],
    },
    ...pipeCases(64, 20_000),
    ...pipeCases(4096, 10_000),
    ...pipeCases(65536, 2_000),
    {
      name: "pipe 64 B round trip",
      count: 2_000,
      deno: (n) => ["pipe.ts", "--mode=pingpong", "--size=64", `--count=${n}`],
      c: (n) => ["pipe", "pingpong", "64", String(n)],
    },
    ...queueCases("sysv"),
    ...queueCases("posix"),
    ...socketCases("tcp"),
    ...socketCases("unix"),
    {
      name: "signal round trip (kill -> listener -> kill)",
      count: 500,
      deno: (n) => ["signal_pingpong.ts", `--rounds=${n}`],
      c: (n) => ["signal_pingpong", String(n)],
    },
    {
      name: "named semaphore ping-pong (C: sem_wait)",
      count: 2_000,
      deno: (n) => ["sem_pingpong.ts", `--rounds=${n}`],
      c: (n) => ["sem_pingpong", String(n)],
    },
    {
      name: "named semaphore ping-pong (C: same spin)",
      count: 2_000,
      deno: (n) => ["sem_pingpong.ts", `--rounds=${n}`],
      c: (n) => ["sem_pingpong", String(n), "spin"],
    },
    // Mach ports (bench/mach.ts): one-way through a port, a request with a send-once
    // reply right, and out-of-line memory against the same bytes copied inline.
    ...[[64, 20_000], [4096, 10_000]].map(([size, count]) => ({
      name: `mach port ${label(size)} one-way`,
      count,
      deno: (n: number) => ["mach.ts", "--mode=oneway", `--size=${size}`, `--count=${n}`],
      c: (n: number) => ["mach", "oneway", String(size), String(n)],
    })),
    {
      name: "mach port request + send-once reply round trip",
      count: 2_000,
      deno: (n) => ["mach.ts", "--mode=rpc", `--count=${n}`],
      c: (n) => ["mach", "rpc", String(n)],
    },
    ...[[2 ** 20, 50], [64 * 2 ** 20, 2]].flatMap(([size, count]) =>
      ["ool", "inline"].map((mode) => ({
        name: `mach port ${size / 2 ** 20} MiB ${mode === "ool" ? "out of line" : "copied inline"}`,
        count,
        step: 2,
        deno: (n: number) => ["mach.ts", `--mode=${mode}`, `--size=${size}`, `--count=${n}`],
        c: (n: number) => ["mach", mode, String(size), String(n)],
      }))
    ),
    // ALPC (lib/alpc.ts) next to the framed Unix socket it is built on, same echo: 64 B and
    // 4 KiB inline, 1 MiB through the sections, 64 MiB read in place. The C column is the
    // framed Unix round trip of bench/c/sock.c (its buffer holds frames up to 1 MiB: the
    // large cases compare with 64 KiB there).
    ...ALPC_SIZES.flatMap(([size, count]) =>
      ["alpc", "framed"].map((transport) => ({
        name: alpcName(transport, size),
        count,
        step: 2,
        deno: (n: number) => [
          "alpc.ts",
          `--transport=${transport}`,
          `--size=${size}`,
          `--count=${n}`,
        ],
        c: (n: number) => ["sock", "pingpong", "unix", String(Math.min(size, 65536)), String(n)],
      }))
    ),
    ...[[64, 2_000], [2 ** 20, 20]].flatMap(([size, count]) =>
      ["alpc", "unix"].map((transport) => ({
        name: rpcName(transport, size),
        count,
        step: 2,
        deno: (n: number) => [
          "alpc.ts",
          "--mode=rpc",
          `--transport=${transport}`,
          `--size=${size}`,
          `--count=${n}`,
        ],
        c: (n: number) => ["sock", "pingpong", "unix", String(Math.min(size, 65536)), String(n)],
      }))
    ),
    shmWrite(64 * 1024),
    shmWrite(1024 * 1024),
    // The file log next to a pipe (`--case="file log"` runs both).
    ...fileLogCases(64, 10_000),
    ...fileLogCases(4096, 5_000),
    {
      name: "file log 64 B round trip (an inotify wake-up each way)",
      count: 500,
      deno: (n) => ["file_log.ts", "--mode=pingpong", "--size=64", `--count=${n}`],
      c: (n) => ["file_log", "pingpong", "64", String(n)],
    },
    {
      name: "file log baseline: pipe 64 B round trip",
      count: 500,
      deno: (n) => ["pipe.ts", "--mode=pingpong", "--size=64", `--count=${n}`],
      c: (n) => ["pipe", "pingpong", "64", String(n)],
    },
  ];
}

/** Deno against Deno, paired like the cases (the claims the README makes as ratios). */
export function benchComparisons(): BenchComparison[] {
  return [
    {
      name: "mailbox / ring, 64 B one-way",
      a: "mailbox 64 B one-way (C: ring)",
      aLabel: "mailbox",
      b: "ring 64 B one-way",
      bLabel: "ring",
    },
    {
      name: "mailbox / ring (allocating receive), 64 B one-way",
      a: "mailbox 64 B one-way (C: ring)",
      aLabel: "mailbox",
      b: "ring 64 B one-way, receive allocates",
      bLabel: "ring",
    },
    {
      name: "mailbox / ring, 64 B round trip",
      a: "mailbox 64 B round trip (C: ring)",
      aLabel: "mailbox",
      b: "ring 64 B round trip",
      bLabel: "ring",
    },
    ...[64, 4096, 65536].map((size) => ({
      name: `deno-ipc pipe / Deno.Command stdout, ${label(size)}`,
      a: `pipe ${label(size)} one-way`,
      aLabel: "pipe",
      b: `Deno.Command stdout ${label(size)} (vs C pipe)`,
      bLabel: "Command",
    })),
    ...[1, 64].map((mib) => ({
      name: `mach port out of line / copied inline, ${mib} MiB`,
      a: `mach port ${mib} MiB out of line`,
      aLabel: "out of line",
      b: `mach port ${mib} MiB copied inline`,
      bLabel: "inline",
    })),
    ...ALPC_SIZES.map(([size]) => ({
      name: `alpc / framed unix socket, ${alpcLabel(size)} round trip`,
      a: alpcName("alpc", size),
      aLabel: "alpc",
      b: alpcName("framed", size),
      bLabel: "unix",
    })),
    ...[64, 2 ** 20].map((size) => ({
      name: `RPC over alpc / over unix socket, ${alpcLabel(size)} call`,
      a: rpcName("alpc", size),
      aLabel: "alpc",
      b: rpcName("unix", size),
      bLabel: "unix",
    })),
    {
      name: "ring / unix socket, 64 B one-way",
      a: "ring 64 B one-way",
      aLabel: "ring",
      b: "unix socket 64 B one-way",
      bLabel: "socket",
    },
  ];
}

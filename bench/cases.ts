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
  const ring = (size: number, count: number, capacity: number): BenchCase => ({
    name: `ring ${size < 1024 ? `${size} B` : `${size / 1024} KiB`} one-way`,
    deno: [
      "ring.ts",
      "--mode=throughput",
      `--size=${size}`,
      `--count=${count}`,
      `--capacity=${capacity}`,
    ],
    c: ["ring", "throughput", String(size), String(count), String(capacity)],
  });
  const scale = quick ? 10 : 1;
  return [
    ring(64, 2_000_000 / scale, 2 ** 20),
    ring(4096, 500_000 / scale, 4 * 2 ** 20),
    ring(65536, 100_000 / scale, 4 * 2 ** 20),
    {
      name: "ring 64 B round trip",
      deno: [
        "ring.ts",
        "--mode=pingpong",
        "--size=64",
        `--count=${rounds * 5}`,
        `--capacity=${2 ** 20}`,
      ],
      c: ["ring", "pingpong", "64", String(rounds * 5), String(2 ** 20)],
    },
    {
      name: "ring 64 B one-way, receive allocates",
      deno: [
        "ring.ts",
        "--mode=throughput",
        "--size=64",
        `--count=${2_000_000 / scale}`,
        `--capacity=${2 ** 20}`,
        "--allocate=true",
      ],
      c: ["ring", "throughput", "64", String(2_000_000 / scale), String(2 ** 20)],
    },
    {
      name: "mailbox 64 B one-way (C: ring)",
      deno: [
        "mailbox.ts",
        "--mode=throughput",
        "--size=64",
        `--count=${2_000_000 / scale}`,
        "--capacity=4096",
      ],
      c: ["ring", "throughput", "64", String(2_000_000 / scale), String(2 ** 20)],
    },
    {
      name: "mailbox 64 B round trip (C: ring)",
      deno: [
        "mailbox.ts",
        "--mode=pingpong",
        "--size=64",
        `--count=${rounds * 5}`,
        "--capacity=4096",
      ],
      c: ["ring", "pingpong", "64", String(rounds * 5), String(2 ** 20)],
    },
    {
      name: "unix socket 64 B one-way",
      deno: ["uds.ts", "--size=64", `--count=${500_000 / scale}`],
      c: ["uds", "64", String(500_000 / scale)],
    },
    ...[[64, 200_000], [4096, 100_000], [65536, 20_000]].flatMap(([size, count]) => {
      const n = String(count / scale);
      const label = size < 1024 ? `${size} B` : `${size / 1024} KiB`;
      return [
        {
          name: `pipe ${label} one-way`,
          deno: ["pipe.ts", "--mode=throughput", `--size=${size}`, `--count=${n}`],
          c: ["pipe", "throughput", String(size), n],
        },
        {
          name: `fifo ${label} one-way`,
          deno: ["pipe.ts", "--mode=fifo", `--size=${size}`, `--count=${n}`],
          c: ["pipe", "fifo", String(size), n],
        },
        {
          name: `Deno.Command stdout ${label} (vs C pipe)`,
          deno: ["pipe.ts", "--mode=stdio", `--size=${size}`, `--count=${n}`],
          c: ["pipe", "throughput", String(size), n],
        },
      ];
    }),
    {
      name: "pipe 64 B round trip",
      deno: ["pipe.ts", "--mode=pingpong", "--size=64", `--count=${rounds}`],
      c: ["pipe", "pingpong", "64", String(rounds)],
    },
    ...["sysv", "posix"].flatMap((kind) => [
      ...[[64, 200_000], [4096, 100_000]].map(([size, count]) => ({
        name: `${kind} queue ${size < 1024 ? `${size} B` : `${size / 1024} KiB`} one-way`,
        deno: [
          "mq.ts",
          `--kind=${kind}`,
          "--mode=throughput",
          `--size=${size}`,
          `--count=${count / scale}`,
        ],
        c: ["mq", kind, "throughput", String(size), String(count / scale)],
      })),
      {
        name: `${kind} queue 64 B round trip`,
        deno: ["mq.ts", `--kind=${kind}`, "--mode=pingpong", "--size=64", `--count=${rounds}`],
        c: ["mq", kind, "pingpong", "64", String(rounds)],
      },
    ]),
    ...["tcp", "unix"].flatMap((transport) => [
      ...[[64, 200_000], [4096, 50_000]].map(([size, n]) => ({
        name: `${transport} framed ${size < 1024 ? `${size} B` : `${size / 1024} KiB`} one-way`,
        deno: [
          "sock.ts",
          "--mode=throughput",
          `--transport=${transport}`,
          `--size=${size}`,
          `--count=${n / scale}`,
        ],
        c: ["sock", "throughput", transport, String(size), String(n / scale)],
      })),
      {
        name: `${transport} RPC call, 64 B (C: framed round trip)`,
        deno: [
          "sock.ts",
          "--mode=rpc",
          `--transport=${transport}`,
          "--size=64",
          `--count=${rounds}`,
        ],
        c: ["sock", "pingpong", transport, "64", String(rounds)],
      },
    ]),
    {
      name: "signal round trip (kill -> listener -> kill)",
      deno: ["signal_pingpong.ts", `--rounds=${rounds / 10}`],
      c: ["signal_pingpong", String(rounds / 10)],
    },
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
    // The file log next to a pipe in the same run (`--case="file log"` runs both).
    ...[[64, 100_000], [4096, 50_000]].flatMap(([size, count]) => {
      const n = String(count / scale);
      const label = size < 1024 ? `${size} B` : `${size / 1024} KiB`;
      return [
        {
          name: `file log ${label} one-way (append per record, inotify)`,
          deno: ["file_log.ts", "--mode=throughput", `--size=${size}`, `--count=${n}`],
          c: ["file_log", "throughput", String(size), n],
        },
        {
          name: `file log baseline: pipe ${label} one-way`,
          deno: ["pipe.ts", "--mode=throughput", `--size=${size}`, `--count=${n}`],
          c: ["pipe", "throughput", String(size), n],
        },
      ];
    }),
    // ALPC (lib/alpc.ts) next to the framed Unix socket it is built on, same echo, same
    // run (`--case=alpc` runs both): 64 B and 4 KiB inline, 1 MiB through the sections,
    // 64 MiB read in place. The C column is the framed Unix round trip of bench/c/sock.c
    // (its buffer holds frames up to 1 MiB: the large cases compare with 64 KiB there).
    ...[[64, rounds], [4096, rounds / 2], [2 ** 20, 200 / scale], [64 * 2 ** 20, 20 / scale]]
      .flatMap(([size, count]) => {
        const n = String(Math.max(2, Math.round(count)));
        const label = size < 1024
          ? `${size} B`
          : size < 2 ** 20
          ? `${size / 1024} KiB`
          : `${size / 2 ** 20} MiB`;
        const cSize = String(Math.min(size, 65536));
        return ["alpc", "framed"].map((transport) => ({
          name: `${transport === "alpc" ? "alpc" : "alpc baseline: framed unix"} ${label} ` +
            `round trip (C: framed ${size > 65536 ? "64 KiB" : label})`,
          deno: ["alpc.ts", `--transport=${transport}`, `--size=${size}`, `--count=${n}`],
          c: ["sock", "pingpong", "unix", cSize, n],
        }));
      }),
    ...[[64, rounds], [2 ** 20, 200 / scale]].flatMap(([size, count]) =>
      ["alpc", "unix"].map((transport) => ({
        name: `RPC call ${size < 1024 ? `${size} B` : "1 MiB"} over ${transport} ` +
          `(C: framed ${size < 1024 ? `${size} B` : "64 KiB"} round trip)`,
        deno: [
          "alpc.ts",
          "--mode=rpc",
          `--transport=${transport}`,
          `--size=${size}`,
          `--count=${Math.max(2, Math.round(count))}`,
        ],
        c: ["sock", "pingpong", "unix", String(Math.min(size, 65536)), String(Math.round(count))],
      }))
    ),
    {
      name: "file log 64 B round trip (an inotify wake-up each way)",
      deno: ["file_log.ts", "--mode=pingpong", "--size=64", `--count=${rounds / 4}`],
      c: ["file_log", "pingpong", "64", String(rounds / 4)],
    },
    {
      name: "file log baseline: pipe 64 B round trip",
      deno: ["pipe.ts", "--mode=pingpong", "--size=64", `--count=${rounds / 4}`],
      c: ["pipe", "pingpong", "64", String(rounds / 4)],
    },
  ];
}

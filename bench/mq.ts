// Message queues between two deno processes (same workloads as bench/c/mq.c). The fast
// idiom: the try form first, the waiting form only when it cannot complete.
// Usage: mq.ts --kind=sysv|posix --mode=throughput|pingpong --size=BYTES --count=N
import { MessageQueue, PosixMessageQueue } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const size = Number(args.size);
const count = Number(args.count);
const pingpong = args.mode === "pingpong";
const message = new Uint8Array(size);
const wait = { timeout: 30_000 };

// One direction of traffic: System V uses one queue and the type for the direction
// (1: to the peer, 2: back); POSIX uses one queue per direction.
interface Direction {
  send(): Promise<void> | undefined;
  receive(): Promise<unknown> | unknown;
}

function sysv(queue: MessageQueue, type: number): Direction {
  return {
    send: () => queue.trySend(type, message) ? undefined : queue.send(type, message, wait),
    receive: () => queue.tryReceive({ type }) ?? queue.receive({ type, ...wait }),
  };
}

function posix(queue: PosixMessageQueue): Direction {
  return {
    send: () => queue.trySend(message) ? undefined : queue.send(message, wait),
    receive: () => queue.tryReceive() ?? queue.receive(wait),
  };
}

if (args.role === "peer") {
  const handles: Disposable[] = [];
  let toPeer: Direction, fromPeer: Direction;
  if (args.kind === "posix") {
    const there = PosixMessageQueue.open({ name: args.there });
    const back = PosixMessageQueue.open({ name: args.back });
    handles.push(there, back);
    [toPeer, fromPeer] = [posix(there), posix(back)];
  } else {
    const queue = MessageQueue.fromId(Number(args.queue));
    handles.push(queue);
    [toPeer, fromPeer] = [sysv(queue, 1), sysv(queue, 2)];
  }
  for (let i = 0; i < count; i++) {
    if (pingpong) {
      await toPeer.receive();
      await fromPeer.send();
    } else {
      await toPeer.send();
    }
  }
  for (const handle of handles) handle[Symbol.dispose]();
} else {
  const queue = args.kind === "posix" ? undefined : MessageQueue.create();
  const there = args.kind === "posix" ? PosixMessageQueue.create() : undefined;
  const back = args.kind === "posix" ? PosixMessageQueue.create() : undefined;
  try {
    const toPeer = queue ? sysv(queue, 1) : posix(there!);
    const fromPeer = queue ? sysv(queue, 2) : posix(back!);
    const peer = spawnPeer(import.meta.url, [
      `--kind=${args.kind}`,
      `--mode=${args.mode}`,
      `--size=${size}`,
      `--count=${count}`,
      `--queue=${queue?.id ?? ""}`,
      `--there=${there?.name ?? ""}`,
      `--back=${back?.name ?? ""}`,
    ]);
    const samples = new Float64Array(count);
    let started = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      if (pingpong) {
        await toPeer.send();
        await fromPeer.receive();
        samples[i] = (performance.now() - t) * 1000;
      } else {
        await toPeer.receive();
        if (i === 0) started = performance.now();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    printResult(
      pingpong ? count : count - 1,
      size * count,
      seconds,
      pingpong ? samples : undefined,
    );
  } finally {
    queue?.remove();
    there?.unlink();
    back?.unlink();
  }
}

import assert from "node:assert/strict";
import fc from "fast-check";
import { MessageRing } from "../mod.ts";
import { FIXTURES } from "./_channel_harness.ts";
import { Child, delay, ipcTest, propertyRuns, testName } from "./_helpers.ts";

const CHILD = new URL("./children/channel_child.ts", import.meta.url).pathname;
const KINDS: Record<string, string> = {
  "BoundedBuffer (textbook)": "textbook",
  "SemaphoreBoundedBuffer": "semaphore",
  "MessageRing": "ring",
};

async function run(args: string[]): Promise<string> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `child ${args.join(" ")} failed: ${stderr}`);
  return new TextDecoder().decode(output.stdout);
}

for (const fixture of FIXTURES) {
  const kind = KINDS[fixture.label];
  ipcTest(
    `${fixture.label}: real producer and consumer processes deliver every item once, in each producer's order`,
    async () => {
      const workload = fc.record({
        producers: fc.integer({ min: 1, max: fixture.multiProducer ? 4 : 1 }),
        consumers: fc.integer({ min: 1, max: fixture.multiConsumer ? 4 : 1 }),
        counts: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 4, maxLength: 4 }),
        slots: fc.integer({ min: 1, max: 16 }),
        itemSize: fc.integer({ min: 3, max: 200 }),
      });
      await fc.assert(
        fc.asyncProperty(workload, async (work) => {
          const shape = { slots: work.slots, itemSize: work.itemSize, producers: work.producers };
          const owner = fixture.create(shape);
          try {
            const consumers = Promise.all(Array.from(
              { length: work.consumers },
              () => run(["consumer", kind, owner.name]),
            ));
            // Awaited below, after the producers; a failure before then must not go
            // unhandled (that would abort the file before its cleanup runs).
            consumers.catch(() => {});
            const end = fixture.endPerProducer ? "1" : "0";
            await Promise.all(Array.from({ length: work.producers }, (_, id) =>
              run([
                "producer",
                kind,
                owner.name,
                String(id),
                String(work.counts[id]),
                String(work.itemSize),
                end,
              ])));
            if (!fixture.endPerProducer) owner.end();
            const received = (await consumers).map((out) => JSON.parse(out) as [number, number][]);

            const seen = new Set<string>();
            for (const keys of received) {
              const last = new Map<number, number>();
              for (const [producer, sequence] of keys) {
                assert.ok(
                  sequence > (last.get(producer) ?? -1),
                  `producer ${producer}'s order broken`,
                );
                last.set(producer, sequence);
                const id = `${producer}:${sequence}`;
                assert.ok(!seen.has(id), `${id} delivered twice`);
                seen.add(id);
              }
            }
            const expected = work.counts.slice(0, work.producers).reduce((a, b) => a + b, 0);
            assert.equal(seen.size, expected, "items lost");
          } finally {
            owner.close();
            fixture.unlink(owner.name);
          }
        }),
        { numRuns: propertyRuns(3) },
      );
    },
  );
}

for (
  const [multiProducer, crashAt] of [
    [false, "ring.send.copied"],
    [true, "ring.send.copied"],
    [true, "ring.send.locked"],
  ] as const
) {
  const mode = multiProducer ? "multi-producer" : "single-producer";
  ipcTest(
    `MessageRing (${mode}): a producer killed at ${crashAt} exposes no partial message`,
    async () => {
      const size = 8 * 2 ** 20;
      // Two producers: the killed child and this process, which sends afterwards.
      using ring = MessageRing.create({ capacity: size + 8, multiProducer, producers: 2 });
      try {
        const child = new Child("channel_child.ts", ["big", ring.name, String(size)], ["-A"], {
          DENO_IPC_CRASH_AT: crashAt,
        });
        assert.equal(await child.line(), "sending");
        const status = await child.status();
        assert.equal(status.signal, "SIGKILL", "the child did not die inside the send");
        assert.equal(ring.tryReceive(), undefined, "a partial message became visible");
        assert.equal(ring.usedBytes, 0);
        // The ring keeps working (in multi-producer mode: the dead writer's lock is taken over).
        await ring.send(new Uint8Array([1, 2, 3]), { timeout: 2000 });
        assert.deepEqual(await ring.receive({ timeout: 2000 }), new Uint8Array([1, 2, 3]));
      } finally {
        ring.unlink();
      }
    },
  );
}

ipcTest(
  "MessageRing: a consumer keeps receiving intact messages from a producer killed at random",
  async () => {
    using ring = MessageRing.create({ capacity: 2 ** 20 });
    try {
      await using child = new Child("channel_child.ts", ["flood", ring.name]);
      assert.equal(await child.line(), "ready");
      let expected = 0;
      const check = (message: Uint8Array) => {
        assert.equal(message.length, 256 * 1024);
        const sequence = new DataView(message.buffer).getUint32(0, true);
        assert.equal(sequence, expected++, "a message was lost or repeated");
        for (let i = 4; i < message.length; i += 997) assert.equal(message[i], sequence & 0xff);
      };
      const deadline = performance.now() + 50 + Math.random() * 150;
      while (performance.now() < deadline) {
        const message = await ring.receive({ timeout: 5000 });
        assert.ok(message);
        check(message);
      }
      child.process.kill("SIGKILL");
      await child.status();
      for (let message = ring.tryReceive(); message; message = ring.tryReceive()) check(message);
      assert.ok(expected > 0);
    } finally {
      ring.unlink();
    }
  },
);

ipcTest(
  "MessageRing: producers that died without end() end the stream after their last message",
  async () => {
    using ring = MessageRing.create({ capacity: 4096, multiProducer: true, producers: 2 });
    try {
      // One producer exits normally without end(); the other is killed inside a send.
      await run(["producer", "ring", ring.name, "1", "3", "16", "0"]);
      const killed = new Child("channel_child.ts", [
        "producer",
        "ring",
        ring.name,
        "2",
        "5",
        "16",
        "0",
      ], [
        "-A",
      ], { DENO_IPC_CRASH_AT: "ring.send.copied", DENO_IPC_CRASH_AFTER: "3" });
      assert.equal((await killed.status()).signal, "SIGKILL");
      const received: Uint8Array[] = [];
      for (;;) {
        const message = await ring.receive({ timeout: 5000 });
        if (message === null) break;
        received.push(message.slice());
      }
      // All 3 of the first, the 2 the second published before dying; not its third.
      assert.equal(received.length, 5);
      assert.throws(() => ring.trySend(new Uint8Array(1)), { name: "StreamEndedError" });
    } finally {
      ring.unlink();
    }
  },
);

ipcTest("MessageRing: a live producer that has not ended keeps the stream open", async () => {
  using ring = MessageRing.create({ capacity: 4096 });
  try {
    using producer = MessageRing.open({ name: ring.name });
    producer.trySend(new Uint8Array([1]));
    assert.deepEqual(await ring.receive({ timeout: 1000 }), new Uint8Array([1]));
    await assert.rejects(ring.receive({ timeout: 50 }), { name: "TimedOutError" });
    producer.end();
    assert.equal(await ring.receive({ timeout: 1000 }), null);
  } finally {
    ring.unlink();
  }
});

ipcTest("MessageRing with producers: 0 never ends, whoever dies", async () => {
  using ring = MessageRing.create({ capacity: 4096, producers: 0 });
  try {
    await run(["producer", "ring", ring.name, "1", "2", "16", "1"]);
    assert.equal((await ring.receive({ timeout: 1000 }))?.length, 16);
    assert.equal((await ring.receive({ timeout: 1000 }))?.length, 16);
    await assert.rejects(ring.receive({ timeout: 50 }), { name: "TimedOutError" });
  } finally {
    ring.unlink();
  }
});

ipcTest(
  "MessageRing with 3 producer and 3 consumer processes, paused and resumed at random (SIGSTOP/SIGCONT) with a 60 s wait slice: every item once, in order, and no lost wake-up",
  async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ who: fc.nat({ max: 5 }), ms: fc.integer({ min: 0, max: 15 }) }), {
          minLength: 5,
          maxLength: 30,
        }),
        fc.constantFrom(0, 2 ** 31 - 64, 2 ** 32 - 64),
        async (pauses, start) => {
          const ring = MessageRing.create({
            name: testName("stop"),
            capacity: 256,
            multiProducer: true,
            multiConsumer: true,
            producers: 3,
          });
          const env = { DENO_IPC_WAIT_SLICE_MS: "60000", DENO_IPC_RING_START: String(start) };
          const spawn = (args: string[]) =>
            new Deno.Command(Deno.execPath(), {
              args: ["run", "-A", CHILD, ...args],
              env,
              stdout: "piped",
              stderr: "inherit",
            }).spawn();
          const children = [
            ...[0, 1, 2].map((id) =>
              spawn(["producer", "ring", ring.name, String(id), "150", "24", "1"])
            ),
            ...[0, 1, 2].map(() => spawn(["consumer", "ring", ring.name])),
          ];
          const outputs = children.map((child) => new Response(child.stdout).text());
          try {
            const signal = (who: number, name: Deno.Signal) => {
              try {
                children[who].kill(name);
              } catch { /* it has finished */ }
            };
            for (const { who, ms } of pauses) {
              signal(who, "SIGSTOP");
              await delay(ms);
              signal(who, "SIGCONT");
            }
            // With a 60 s slice, a lost wake-up shows as a child still waiting here.
            const finished = Promise.all(children.map((child) => child.status));
            let timer: ReturnType<typeof setTimeout> | undefined;
            const stuck = new Promise((resolve) =>
              timer = setTimeout(() => resolve("stuck"), 20_000)
            );
            try {
              assert.notEqual(await Promise.race([finished, stuck]), "stuck", "a child never woke");
            } finally {
              clearTimeout(timer);
            }
            const seen = new Set<string>();
            for (const output of (await Promise.all(outputs)).slice(3)) {
              const last = new Map<number, number>();
              for (const [producer, sequence] of JSON.parse(output) as [number, number][]) {
                assert.ok(sequence > (last.get(producer) ?? -1), "a producer's order broken");
                last.set(producer, sequence);
                assert.ok(!seen.has(`${producer}:${sequence}`), "an item delivered twice");
                seen.add(`${producer}:${sequence}`);
              }
            }
            assert.equal(seen.size, 450, "items lost");
          } finally {
            for (const child of children) {
              try {
                child.kill("SIGKILL");
              } catch { /* exited */ }
            }
            await Promise.all(children.map((child) => child.status));
            await Promise.all(outputs);
            ring.close();
            ring.unlink();
          }
        },
      ),
      { numRuns: propertyRuns(2) },
    );
  },
);

// Direct communication: processes name each other. P sends to Q with send(Q, message)
// and receives Q's replies with receive(Q); Q serves with receive() from anyone, which
// also says who sent each message. The link between P and Q is set up automatically on
// first use, one per pair. R, a third process, also talks to Q, but has no link with P
// and cannot read P's messages: its receive(P) finds nothing.
//
//   deno run -A --unstable-net scenarios/direct_communication.ts
import { DirectEndpoint } from "../mod.ts";
import { runRole, scenarioArgs, trace, traceEvent } from "./_common.ts";

const { role, values } = scenarioArgs();
const namespace = values.namespace;
const TIMEOUT = { timeout: 10_000 };
/** The lifeline of the link between two processes (one per pair, set up on first use). */
const link = (a: string, b: string) => `link ${[a, b].sort().join("-")}`;

if (role === "P") {
  using p = DirectEndpoint.open({ name: "P", namespace });
  for (let i = 1; i <= 2; i++) {
    await p.send("Q", `question ${i}`, TIMEOUT);
    traceEvent("P", "send", {
      object: link("P", "Q"),
      label: `question ${i}`,
      text: `send(Q, "question ${i}")`,
    });
    const reply = await p.receiveFrom("Q", TIMEOUT);
    traceEvent("P", "receive", {
      object: link("P", "Q"),
      label: reply.text(),
      text: `receive(Q) -> "${reply.text()}"`,
    });
  }
} else if (role === "R") {
  using r = DirectEndpoint.open({ name: "R", namespace });
  await r.send("Q", "hello from R", TIMEOUT);
  traceEvent("R", "send", {
    object: link("Q", "R"),
    label: "hello from R",
    text: `send(Q, "hello from R")`,
  });
  const reply = await r.receiveFrom("Q", TIMEOUT);
  traceEvent("R", "receive", {
    object: link("Q", "R"),
    label: reply.text(),
    text: `receive(Q) -> "${reply.text()}"`,
  });
  const stolen = r.tryReceiveFrom("P");
  trace("R", `receive(P) without waiting -> ${stolen?.text() ?? "nothing: P's messages go to Q"}`);
} else if (role === "Q") {
  using q = DirectEndpoint.open({ name: "Q", namespace });
  for (let served = 0; served < 3; served++) {
    const message = await q.receive(TIMEOUT);
    const from = message.sender.name!;
    traceEvent("Q", "receive", {
      object: link("Q", from),
      label: message.text(),
      text: `receive() from anyone -> "${message.text()}" from ${from}`,
    });
    const answer = `answer to "${message.text()}"`;
    await q.send(from, answer, TIMEOUT);
    traceEvent("Q", "send", {
      object: link("Q", from),
      label: answer,
      text: `send(${from}, answer)`,
    });
  }
  trace("Q", `links: ${q.peers.map((peer) => `Q-${peer}`).join(", ")}`);
} else {
  const ns = `scenario${crypto.randomUUID().slice(0, 8)}`;
  // Each name is registered before any process starts, so a send never races the
  // peer's start: messages wait in the link like letters.
  for (const name of ["P", "Q", "R"]) DirectEndpoint.open({ name, namespace: ns }).close();
  try {
    trace("main", `namespace ${ns}: processes P, Q and R`);
    await Promise.all(
      ["Q", "P", "R"].map((name) => runRole(import.meta.url, name, { namespace: ns })),
    );
  } finally {
    for (const name of ["P", "Q", "R"]) {
      using endpoint = DirectEndpoint.open({ name, namespace: ns });
      endpoint.unlink();
    }
    trace("main", "removed the endpoints and their links");
  }
}

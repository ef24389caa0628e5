// Ordinary pipes (Silberschatz, OSC, 3.7.4). Part 1, the textbook example: the parent
// creates a pipe, starts a child that inherits the read end, writes "Greetings" and
// closes its write end; the child reads the message, then sees EOF. Part 2: two pipes
// for two-way talk; the child answers each line in upper case.
//
//   deno run -A --unstable-net scenarios/pipe_parent_child.ts
import { createPipe, inheritedPipeEnds, spawnWithPipePair, spawnWithPipes } from "../mod.ts";
import { scenarioArgs, trace, traceEvent } from "./_common.ts";

const { role } = scenarioArgs();
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const self = new URL(import.meta.url).pathname;
const PIPE = "pipe";
const DOWN = "pipe parent to child";
const UP = "pipe child to parent";

if (role === "reader") {
  const { input } = inheritedPipeEnds({ input: "reader" });
  using _input = input;
  trace("child", `inherited the read end as fd ${input.fd}`);
  const buffer = new Uint8Array(64);
  for (let n = await input.read(buffer); n !== null; n = await input.read(buffer)) {
    const text = decoder.decode(buffer.subarray(0, n));
    traceEvent("child", "receive", {
      object: PIPE,
      label: text,
      text: `read "${text}" from the pipe`,
    });
  }
  traceEvent("child", "receive", {
    object: PIPE,
    label: "EOF",
    text: "read returned EOF: every write end is closed",
  });
} else if (role === "upper") {
  const { input, output } = inheritedPipeEnds({ input: "reader", output: "writer" });
  using _input = input;
  using _output = output;
  let pending = "";
  for await (const chunk of input.readable()) {
    pending += decoder.decode(chunk, { stream: true });
    for (let end = pending.indexOf("\n"); end !== -1; end = pending.indexOf("\n")) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      traceEvent("child", "receive", {
        object: DOWN,
        label: line,
        text: `got "${line}", answering "${line.toUpperCase()}"`,
      });
      await output.write(encoder.encode(line.toUpperCase() + "\n"));
      traceEvent("child", "send", { object: UP, label: line.toUpperCase() });
    }
  }
} else {
  trace("parent", "part 1: one pipe, parent writes, child reads");
  const { reader, writer } = createPipe();
  using _writer = writer;
  traceEvent("parent", "create", {
    object: PIPE,
    label: "pipe()",
    text: `pipe(): read end fd ${reader.fd}, write end fd ${writer.fd}`,
  });
  const child = spawnWithPipes(Deno.execPath(), {
    args: ["run", "-A", self, "--role=reader"],
    ends: { input: reader },
  });
  trace("parent", "started the child (fork + exec) and closed its own copy of the read end");
  await writer.write(encoder.encode("Greetings"));
  traceEvent("parent", "send", {
    object: PIPE,
    label: "Greetings",
    text: `wrote "Greetings" and closes the write end`,
  });
  writer.close();
  traceEvent("parent", "send", { object: PIPE, label: "EOF" });
  if ((await child.status).code !== 0) throw new Error("the child failed");

  trace("parent", "part 2: two pipes, one each way");
  const pair = spawnWithPipePair(Deno.execPath(), { args: ["run", "-A", self, "--role=upper"] });
  using fromChild = pair.reader;
  using toChild = pair.writer;
  traceEvent("parent", "create", { object: DOWN, label: "pipe()" });
  traceEvent("parent", "create", { object: UP, label: "pipe()" });
  const replies = fromChild.readable().pipeThrough(new TextDecoderStream());
  const reading = (async () => {
    let text = "";
    for await (const chunk of replies) text += chunk;
    return text.trim().split("\n");
  })();
  for (const line of ["hello", "ordinary pipes are one-way", "bye"]) {
    await toChild.write(encoder.encode(line + "\n"));
    traceEvent("parent", "send", { object: DOWN, label: line, text: `sends "${line}"` });
  }
  toChild.close();
  for (const reply of await reading) {
    traceEvent("parent", "receive", { object: UP, label: reply, text: `received "${reply}"` });
  }
  if ((await pair.child.status).code !== 0) throw new Error("the child failed");
}

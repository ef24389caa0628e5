// Child process for pipe tests; it gets its ends with inheritedPipeEnds().
//   fds                      prints its open fds as "fd -> target" lines, then "end"
//   upper                    reads lines from `input`, writes them upper-cased to `output`
//   digest CHUNKS            reads `input` to EOF in chunks of the given sizes (cycling,
//                            comma-separated); prints "LENGTH SHA256HEX"
//   records ID COUNT SIZE    writes COUNT records of SIZE bytes to `output`, one write each
import { inheritedPipeEnds } from "../../mod.ts";

const [action, ...rest] = Deno.args;
switch (action) {
  case "fds": {
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        console.log(`${entry.name} -> ${Deno.readLinkSync(`/proc/self/fd/${entry.name}`)}`);
      } catch { /* the directory's own fd is gone already */ }
    }
    console.log("end");
    break;
  }
  case "upper": {
    const { input, output } = inheritedPipeEnds({ input: "reader", output: "writer" });
    const lines = input.readable().pipeThrough(new TextDecoderStream());
    for await (const text of lines) {
      await output.write(new TextEncoder().encode(text.toUpperCase()));
    }
    output.close();
    break;
  }
  case "digest": {
    const { input } = inheritedPipeEnds({ input: "reader" });
    const sizes = rest[0].split(",").map(Number);
    const parts: Uint8Array[] = [];
    for (let i = 0;; i++) {
      const buffer = new Uint8Array(sizes[i % sizes.length]);
      const n = await input.read(buffer, { timeout: 30_000 });
      if (n === null) break;
      parts.push(buffer.slice(0, n));
    }
    input.close();
    const all = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) all.set(part, (offset += part.length) - part.length);
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
    console.log(
      `${all.length} ${Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("")}`,
    );
    break;
  }
  case "records": {
    const { output } = inheritedPipeEnds({ output: "writer" });
    const [id, count, size] = rest.map(Number);
    for (let sequence = 0; sequence < count; sequence++) {
      const record = new Uint8Array(size).fill((id * 17 + sequence) & 0xff);
      record[0] = id;
      await output.write(record, { timeout: 30_000 });
    }
    output.close();
    break;
  }
  default:
    throw new Error(`unknown action ${action}`);
}

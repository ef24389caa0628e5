// Appends under a file-size limit (the parent runs it with `ulimit -f 8`, SIGXFSZ
// ignored) while a reader follows the log: a batch fails with EFBIG partway. Prints JSON
// { seen, held }: what the reader returned and what the log holds afterwards, as
// "sequence:first byte:length".
import { FileLog } from "../../mod.ts";

const [path] = Deno.args;
const describe = (r: { sequence: number; data: Uint8Array }) =>
  `${r.sequence}:${r.data[0]}:${r.data.length}`;
using log = FileLog.open(path, { sync: "record" });
using reader = log.reader({ from: "start" });
const seen: string[] = [];
const follow = (async () => {
  try {
    for (;;) seen.push(describe(await reader.read({ timeout: 1000 })));
  } catch { /* timed out: nothing more */ }
})();
await log.appendBatch([new Uint8Array(3000).fill(1), new Uint8Array(6000).fill(2)])
  .catch(() => {});
await log.append(new Uint8Array(3000).fill(9)).catch(() => {});
await log.append(new Uint8Array(100).fill(7));
await follow;
using fresh = log.reader({ from: "start" });
const held: string[] = [];
for (let r; (r = fresh.tryRead());) held.push(describe(r));
console.log(JSON.stringify({ seen, held }));

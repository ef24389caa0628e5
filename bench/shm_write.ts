// Shared-memory write bandwidth (same workload as bench/c/shm_write.c): a peer deno
// process writes CHUNK-byte blocks into the region with Uint8Array.set until TOTAL bytes
// are written; this process then checks the region holds the pattern.
// Usage: shm_write.ts --total=BYTES --chunk=BYTES --region=BYTES
import { SharedMemory } from "../mod.ts";
import { benchArgs, printResult, spawnPeer } from "./_common.ts";

const args = benchArgs();
const total = Number(args.total);
const chunk = Number(args.chunk);
const region = Number(args.region);

function pattern(): Uint8Array {
  const source = new Uint8Array(chunk);
  for (let i = 0; i < chunk; i++) source[i] = (i * 7 + 1) & 0xff;
  return source;
}

if (args.role === "peer") {
  using shm = SharedMemory.open({ name: args.name });
  const source = pattern();
  const bytes = shm.bytes;
  let offset = 0;
  const start = performance.now();
  for (let written = 0; written < total; written += chunk) {
    bytes.set(source, offset);
    offset += chunk;
    if (offset + chunk > region) offset = 0;
  }
  shm.view(Float64Array, region, 1)[0] = (performance.now() - start) / 1000;
} else {
  using shm = SharedMemory.create({ size: region + 8 });
  try {
    const peer = spawnPeer(import.meta.url, [
      `--name=${shm.name}`,
      `--total=${total}`,
      `--chunk=${chunk}`,
      `--region=${region}`,
    ]);
    if ((await peer.status).code !== 0) throw new Error("peer failed");
    const expected = pattern();
    const written = shm.bytes.subarray(0, chunk);
    if (!written.every((byte, i) => byte === expected[i])) {
      throw new Error("the region does not hold the pattern");
    }
    printResult(total / chunk, total, shm.view(Float64Array, region, 1)[0]);
  } finally {
    shm.unlink();
  }
}

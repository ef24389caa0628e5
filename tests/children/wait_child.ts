// Child process for the wait-loop tests: one timed read from a pipe nobody writes to,
// printing the name of the error it ended with (the parent bounds how long that takes).
import { createPipe } from "../../mod.ts";

const { reader, writer } = createPipe();
try {
  await reader.read(new Uint8Array(8), { timeout: Number(Deno.args[0]) });
  console.log("read something");
} catch (error) {
  console.log((error as Error).name);
} finally {
  reader.close();
  writer.close();
}

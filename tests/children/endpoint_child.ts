// Makes a FIFO and a listening Unix socket in DIRECTORY (DIRECTORY/fifo, DIRECTORY/socket),
// prints "ready", then waits to be killed. With "rm": makes the FIFO, removes it without
// the library (as `rm` would) and exits.
//   endpoint_child.ts DIRECTORY [rm]
import { FramedServer } from "../../lib/socket.ts";
import { Fifo } from "../../lib/fifo.ts";

const [directory, mode] = Deno.args;
Fifo.create(`${directory}/fifo`);
if (mode === "rm") {
  Deno.removeSync(`${directory}/fifo`);
} else {
  const server = FramedServer.listen({ transport: "unix", path: `${directory}/socket` });
  console.log("ready");
  setInterval(() => server, 1 << 30); // keeps the process (and the server) alive until killed
}

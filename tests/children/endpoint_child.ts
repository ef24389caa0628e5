// Makes a FIFO and a listening Unix socket in DIRECTORY (DIRECTORY/fifo, DIRECTORY/socket),
// prints "ready", then waits to be killed.
//   endpoint_child.ts DIRECTORY
import { FramedServer } from "../../lib/socket.ts";
import { Fifo } from "../../lib/fifo.ts";

const [directory] = Deno.args;
Fifo.create(`${directory}/fifo`);
const server = FramedServer.listen({ transport: "unix", path: `${directory}/socket` });
console.log("ready");
setInterval(() => server.addr, 1 << 30); // keeps the process alive until killed

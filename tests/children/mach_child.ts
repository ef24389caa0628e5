// Child process for tests/mach_port_test.ts and mach_bootstrap_test.ts. Roles (first argument):
//   send TOKEN COUNT ID       sends COUNT messages (ids ID, ID+1, ...; body: own pid as text
//                             plus a forged claim), prints "sent", exits
//   blocked-send TOKEN        prints "sending", sends one message (may wait), prints the
//                             outcome ("sent" or the error name)
//   send-until-dead TOKEN     sends (waiting for room) until a send fails; prints "sending"
//                             first, then the error's name
//   slow-receive TOKEN        takes a receive right, prints "ready", receives one message
//                             every few milliseconds until killed
//   hold-receive TOKEN        takes a receive right, prints "ready", waits to be killed
//   reply-server TOKEN        takes a receive right, receives one request, prints "got",
//                             then waits to be killed without replying
//   service DIR NAME          checks in as NAME with the bootstrap server in DIR, prints
//                             "ready", answers each request's reply right with id+1000
//   forge PID FD...           holds no right; tries every way it knows to reach the
//                             descriptors FD of process PID; prints a JSON report
import "./_crash.ts";
import { Bootstrap, ReceiveRight, SendRight } from "../../lib/mach_port.ts";

const [role, ...rest] = Deno.args;
const encoder = new TextEncoder();

switch (role) {
  case "send": {
    const [token, count, firstId] = rest;
    using right = SendRight.fromInherited(token);
    for (let i = 0; i < Number(count); i++) {
      // The body claims to come from pid 1: the receiver must believe the kernel instead.
      const body = encoder.encode(JSON.stringify({ pid: Deno.pid, claimedPid: 1, i }));
      await right.send({ id: Number(firstId) + i, body });
    }
    console.log("sent");
    break;
  }
  case "blocked-send": {
    using right = SendRight.fromInherited(rest[0]);
    console.log("sending");
    try {
      await right.send({ id: 1 });
      console.log("sent");
    } catch (error) {
      console.log((error as Error).name);
    }
    break;
  }
  case "send-until-dead": {
    using right = SendRight.fromInherited(rest[0]);
    console.log("sending");
    try {
      for (let i = 0;; i++) await right.send({ id: i, body: encoder.encode(String(Deno.pid)) });
    } catch (error) {
      console.log((error as Error).name);
    }
    break;
  }
  case "slow-receive": {
    using port = ReceiveRight.fromInherited(rest[0]);
    console.log("ready");
    while (true) {
      (await port.receive())[Symbol.dispose]();
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
  }
  case "hold-receive": {
    using _port = ReceiveRight.fromInherited(rest[0]);
    console.log("ready");
    await new Promise(() => setInterval(() => {}, 1000));
    break;
  }
  case "reply-server": {
    using port = ReceiveRight.fromInherited(rest[0]);
    console.log("ready");
    const _request = await port.receive();
    console.log("got");
    await new Promise(() => setInterval(() => {}, 1000));
    break;
  }
  case "service": {
    const [directory, name] = rest;
    const bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
    using port = await bootstrap.checkIn(name);
    bootstrap.close();
    console.log("ready");
    while (true) {
      using request = await port.receive();
      if (request.reply) await request.reply.send({ id: request.id + 1000 });
    }
  }
  case "forge": {
    const [pid, ...fds] = rest;
    const report: Record<string, string> = {};
    for (const fd of fds) {
      const path = `/proc/${pid}/fd/${fd}`;
      try {
        const file = await Deno.open(path, { read: true, write: true });
        file.close();
        report[fd] = "opened";
      } catch (error) {
        report[fd] = (error as Error).name;
      }
    }
    console.log(JSON.stringify(report));
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}

// The bootstrap server of Mach ports: one process per user, started on demand by the
// first client (lib/_mach_bootstrap.ts), listening on a SOCK_SEQPACKET socket in a 0700
// directory. It maps names to ports: checkIn gives a service the receive right of a
// new port (keeping a send right to hand out and to watch), lookUp gives clients a copy
// of that send right, register records a send right a client holds.
//
// When a service's process dies its port dies with it (the kernel closes the receive
// end): the name is dropped, look-ups fail saying so, and a restarted service checks
// in again under the same name (a new port). launchd instead takes the receive right
// back so that clients' rights survive a restart; a Linux process cannot take a
// descriptor back from a dead one.
//
// The server exits once it has had no clients and no live registrations for its idle
// time, removing its socket file if it is still its own.
//
//   deno run --allow-ffi --allow-read --allow-write lib/_mach_bootstrap_server.ts DIR IDLE_MS
import { forgetEndpoint, recordEndpoint } from "./_endpoints.ts";
import { C, ERRNO } from "../ffi/constants.ts";
import { check, CorruptedError, ErrnoError, lastErrno } from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { ReceiveRight } from "./_mach_receive.ts";
import { makeSendRight, SendRight } from "./_mach_send.ts";
import {
  closeAll,
  KIND_SEND,
  PacketReceiver,
  PacketSender,
  passCredentials,
  pollAny,
  type ReceivedPacket,
  ROLE_BODY,
  type WireRight,
} from "./_mach_wire.ts";
import { cString } from "./_validate.ts";

/** Request ids. */
export const OP_CHECK_IN = 1;
export const OP_LOOK_UP = 2;
export const OP_REGISTER = 3;
/** Answered with REPLY_OK: a new connection checks that the server took it. */
export const OP_PING = 4;
/** Reply ids. */
export const REPLY_OK = 0;
export const REPLY_NOT_FOUND = 1;
export const REPLY_IN_USE = 2;
export const REPLY_BAD_REQUEST = 3;
/** The server could not do it now (out of descriptors, say); the errno is in `slot`. */
export const REPLY_SERVER_ERROR = 4;
/** Longest service name, in UTF-8 bytes (launchd's name_t). */
export const MAX_SERVICE_NAME = 128;
/** The socket's file name inside the bootstrap directory. */
export const SOCKET_NAME = "bootstrap.sock";

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();
const SLICE_MS = 100;

interface Service {
  send: SendRight;
  checkedIn: boolean;
}

interface Connection {
  fd: number;
}

/** Runs the server until it has been idle for `idleMs`. */
export async function serve(directory: string, idleMs: number): Promise<void> {
  const { symbols } = libc();
  const path = `${directory}/${SOCKET_NAME}`;
  const listener = listen(path);
  const receiver = new PacketReceiver();
  const sender = new PacketSender();
  const services = new Map<string, Service>();
  const died = new Set<string>();
  const connections = new Set<Connection>();
  let idleSince = performance.now();
  // Out of descriptors: stop polling the listener for a slice (it would stay readable).
  let acceptAgainAt = 0;
  try {
    while (true) {
      const listening = performance.now() >= acceptAgainAt;
      const fds = [...(listening ? [listener.fd] : []), ...[...connections].map((c) => c.fd)];
      const watched = [...services.values()].map((s) => s.send.dataFd);
      await pollAny(
        [...fds, ...watched],
        [...fds.map(() => C.POLLIN), ...watched.map(() => 0)],
        SLICE_MS,
      );
      while (listening) {
        const fd = symbols.accept4(listener.fd, null, null, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC);
        if (fd < 0) {
          const errno = lastErrno();
          if (errno === ERRNO.EMFILE || errno === ERRNO.ENFILE) {
            acceptAgainAt = performance.now() + SLICE_MS;
          }
          break;
        }
        try {
          passCredentials(fd, path);
        } catch {
          symbols.close(fd);
          continue;
        }
        connections.add({ fd });
      }
      for (const connection of [...connections]) {
        while (true) {
          let packet: ReceivedPacket | undefined | null;
          try {
            packet = receiver.receive(connection.fd, path);
          } catch {
            packet = null; // a client that sends garbage is disconnected
          }
          if (packet === undefined) break;
          if (packet === null) {
            connections.delete(connection);
            symbols.close(connection.fd);
            break;
          }
          const reply = handle(packet, services, died);
          // Echo the request's number: a client that gave up waiting for this reply
          // must not take it for the answer to its next request.
          reply.packet.onceId = packet.onceId;
          let sent = false;
          try {
            sent = sender.send(connection.fd, reply.packet, path) === "sent";
          } catch {
            // ETOOMANYREFS, ENOBUFS...: this reply is lost, never the server.
          }
          if (sent) reply.sent();
          else reply.failed();
        }
      }
      for (const [name, service] of services) {
        if (service.send.dead) {
          service.send.close();
          services.delete(name);
          died.add(name);
        }
      }
      if (connections.size > 0 || services.size > 0) idleSince = performance.now();
      else if (performance.now() - idleSince >= idleMs) return;
    }
  } finally {
    for (const connection of connections) symbols.close(connection.fd);
    for (const service of services.values()) service.send.close();
    listener.close();
  }
}

interface Reply {
  packet: {
    flags: number;
    id: number;
    slot: number;
    onceId: number;
    body: Uint8Array;
    rights: WireRight[];
  };
  sent(): void;
  failed(): void;
}

function answer(
  id: number,
  text: string,
  rights: WireRight[] = [],
  sent = () => {},
  failed = () => {},
): Reply {
  return {
    packet: { flags: 0, id, slot: -1, onceId: 0, body: encoder.encode(text), rights },
    sent,
    failed,
  };
}

// Answers one request. A failure of the server's own (out of descriptors, say) is
// answered as such: it must not end the server, which holds every name.
function handle(packet: ReceivedPacket, services: Map<string, Service>, died: Set<string>): Reply {
  let received = packet.rights;
  const cleanup = () => {
    for (const right of received) closeAll(right.fds);
    received = [];
  };
  try {
    return handleRequest(packet, services, died, cleanup, () => received = []);
  } catch (error) {
    cleanup();
    const reply = answer(REPLY_SERVER_ERROR, `the bootstrap server failed: ${error}`);
    reply.packet.slot = error instanceof ErrnoError ? error.errno : 0;
    return reply;
  }
}

function handleRequest(
  packet: ReceivedPacket,
  services: Map<string, Service>,
  died: Set<string>,
  cleanup: () => void,
  takenOver: () => void,
): Reply {
  const received = packet.rights;
  if (packet.id === OP_PING) {
    cleanup();
    return answer(REPLY_OK, "");
  }
  let name: string;
  try {
    name = decoder.decode(packet.body);
  } catch {
    cleanup();
    return answer(REPLY_BAD_REQUEST, "the service name is not UTF-8");
  }
  if (name.length === 0 || packet.body.length > MAX_SERVICE_NAME || name.includes("\0")) {
    cleanup();
    return answer(REPLY_BAD_REQUEST, `invalid service name`);
  }
  let existing = services.get(name);
  if (existing !== undefined && existing.send.dead) {
    existing.send.close();
    services.delete(name);
    died.add(name);
    existing = undefined;
  }
  const alive = existing !== undefined;
  switch (packet.id) {
    case OP_CHECK_IN: {
      cleanup();
      if (alive) {
        return answer(
          REPLY_IN_USE,
          existing!.checkedIn
            ? `service "${name}" is already checked in by a running process`
            : `"${name}" is registered with a send right`,
        );
      }
      existing?.send.close();
      const port = ReceiveRight.allocate({ label: name });
      let send: SendRight;
      try {
        send = port.makeSend();
      } catch (error) {
        port.close();
        throw error;
      }
      services.set(name, { send, checkedIn: true });
      died.delete(name);
      return answer(REPLY_OK, "", [port.wire(ROLE_BODY)], () => port.handOver(), () => {
        port.close();
        send.close();
        services.delete(name);
      });
    }
    case OP_LOOK_UP: {
      cleanup();
      if (!alive) {
        return answer(
          REPLY_NOT_FOUND,
          died.has(name)
            ? `service "${name}" died (its port is dead); it must check in again`
            : `no service is registered as "${name}"`,
        );
      }
      return answer(REPLY_OK, "", [existing!.send.wire(ROLE_BODY)]);
    }
    case OP_REGISTER: {
      if (received.length !== 1 || received[0].kind !== KIND_SEND) {
        cleanup();
        return answer(REPLY_BAD_REQUEST, "register needs exactly one send right");
      }
      if (alive) {
        cleanup();
        return answer(REPLY_IN_USE, `the name "${name}" is in use`);
      }
      existing?.send.close();
      let send: SendRight;
      try {
        takenOver(); // the descriptors are the new right's now, whatever happens
        send = makeSendRight(received[0].fds, name);
      } catch (error) {
        if (!(error instanceof CorruptedError)) throw error;
        return answer(REPLY_BAD_REQUEST, "the send right is not a port");
      }
      services.set(name, { send, checkedIn: false });
      died.delete(name);
      return answer(REPLY_OK, "");
    }
    default:
      cleanup();
      return answer(REPLY_BAD_REQUEST, `unknown request ${packet.id}`);
  }
}

// Binds the socket; a file left there by a server that died is replaced. The caller
// holds the start lock, so no live server can be starting at the same time.
function listen(path: string): { fd: number; close(): void } {
  const { symbols } = libc();
  const fd = check(
    "socket",
    symbols.socket(C.AF_UNIX, C.SOCK_SEQPACKET | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
    path,
  );
  const address = new Uint8Array(C.SIZEOF_SOCKADDR_UN);
  new DataView(address.buffer).setUint16(0, C.AF_UNIX, true);
  address.set(encoder.encode(path), 2);
  const length = 2 + encoder.encode(path).length + 1;
  try {
    if (symbols.bind(fd, address, length) !== 0) {
      if (lastErrno() !== ERRNO.EADDRINUSE) check("bind", -1, path);
      symbols.unlink(cString(path));
      check("bind", symbols.bind(fd, address, length), path);
    }
    check("chmod", symbols.chmod(cString(path), 0o600), path);
    passCredentials(fd, path);
    check("listen", symbols.listen(fd, 128), path);
  } catch (error) {
    symbols.close(fd);
    throw error;
  }
  const status = new Uint8Array(C.SIZEOF_STAT);
  check("stat", symbols.stat(cString(path), status), path);
  const inode = new DataView(status.buffer).getBigUint64(C.STAT_OFFSET_INO, true);
  // In the endpoint registry, so that `ipc list` shows a bootstrap server and `ipc clean`
  // removes the socket of one that died (lib/_endpoints.ts).
  recordEndpoint("unix-socket", path);
  return {
    fd,
    close() {
      symbols.close(fd);
      // Remove the socket file only while it is still ours.
      if (symbols.stat(cString(path), status) === 0) {
        if (new DataView(status.buffer).getBigUint64(C.STAT_OFFSET_INO, true) === inode) {
          symbols.unlink(cString(path));
        }
      }
      forgetEndpoint(path, inode);
    },
  };
}

if (import.meta.main) {
  const [directory, idle] = Deno.args;
  const idleMs = Number(idle);
  if (!directory || !Number.isFinite(idleMs) || idleMs < 0) {
    console.error("usage: _mach_bootstrap_server.ts DIR IDLE_MS");
    Deno.exit(2);
  }
  await serve(directory, idleMs);
}

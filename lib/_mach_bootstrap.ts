// The client side of the bootstrap server (lib/_mach_bootstrap_server.ts).
import { C, ERRNO } from "../ffi/constants.ts";
import {
  AlreadyExistsError,
  check,
  closedError,
  ErrnoError,
  errnoError,
  lastErrno,
  NotFoundError,
  PermissionDeniedError,
  timedOutError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { Lifetime } from "./_lifetime.ts";
import {
  MAX_SERVICE_NAME,
  OP_CHECK_IN,
  OP_LOOK_UP,
  OP_PING,
  OP_REGISTER,
  REPLY_IN_USE,
  REPLY_NOT_FOUND,
  REPLY_OK,
  REPLY_SERVER_ERROR,
  SOCKET_NAME,
} from "./_mach_bootstrap_server.ts";
import { ReceiveRight, receiveRightFromWire } from "./_mach_receive.ts";
import { makeSendRight, SendRight } from "./_mach_send.ts";
import {
  closeAll,
  KIND_RECEIVE,
  KIND_SEND,
  PacketReceiver,
  PacketSender,
  passCredentials,
  pollAny,
  type ReceivedPacket,
  ROLE_BODY,
  type WireRight,
} from "./_mach_wire.ts";
import { effectiveUid } from "./_owner.ts";
import {
  cString,
  describe,
  validateInteger,
  validateOptions,
  validateString,
} from "./_validate.ts";
import { PENDING, validateWaitOptions, waitFor, type WaitOptions } from "./_wait.ts";

const WHAT = "bootstrap server";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const RETRY_MS = 5;
const DEFAULT_START_TIMEOUT_MS = 20_000;
const DEFAULT_IDLE_MS = 5_000;

/** Options of {@link Bootstrap.connect}. */
export interface BootstrapOptions extends WaitOptions {
  /**
   * The bootstrap directory (created with mode 0700; an existing one must be this
   * user's, with no group or other access). Default: `$XDG_RUNTIME_DIR/deno-ipc-mach`,
   * or `/tmp/deno-ipc-mach-UID`.
   */
  directory?: string;
  /**
   * How long a server started by this call stays up with no clients and no live
   * registrations, in ms. Default: 5000.
   */
  idleMs?: number;
}

/**
 * Checks a service name: a non-empty, well-formed string of at most 128 UTF-8 bytes
 * without NUL.
 */
export function validateServiceName(name: unknown): string {
  if (typeof name !== "string") {
    throw new TypeError(`Invalid service name: expected a string, got ${describe(name)}`);
  }
  if (name.length === 0) throw new TypeError(`Invalid service name: it is empty`);
  if (name.includes("\0")) throw new TypeError(`Invalid service name: it contains NUL`);
  // A lone surrogate would travel as U+FFFD: two different names would meet.
  if (!name.isWellFormed()) {
    throw new TypeError(`Invalid service name: it is not well-formed Unicode (a lone surrogate)`);
  }
  const length = encoder.encode(name).length;
  if (length > MAX_SERVICE_NAME) {
    throw new RangeError(
      `Invalid service name "${name.slice(0, 24)}...": ${length} bytes, the limit is ` +
        `${MAX_SERVICE_NAME}`,
    );
  }
  return name;
}

function defaultDirectory(): string {
  const variable = "XDG_RUNTIME_DIR";
  const granted = Deno.permissions.querySync({ name: "env", variable }).state === "granted";
  const runtime = granted ? Deno.env.get(variable) : undefined;
  return runtime ? `${runtime}/deno-ipc-mach` : `/tmp/deno-ipc-mach-${effectiveUid()}`;
}

// Creates the directory 0700, or checks an existing one: a directory (not a link),
// ours, without group/other access. Someone else's directory could hold their server.
function ensureDirectory(directory: string): void {
  const { symbols } = libc();
  // A failed mkdir is judged by what is there, not by errno alone: the first call of an
  // FFI symbol in a process now and then leaves errno changed (ENOENT for an EEXIST).
  const made = symbols.mkdirat(C.AT_FDCWD, cString(directory), 0o700) === 0;
  const mkdirErrno = made ? 0 : lastErrno();
  const status = new Uint8Array(C.SIZEOF_STAT);
  if (symbols.fstatat(C.AT_FDCWD, cString(directory), status, C.AT_SYMLINK_NOFOLLOW) !== 0) {
    throw errnoError(made ? lastErrno() : mkdirErrno, made ? "fstatat" : "mkdir", {
      objectName: directory,
    });
  }
  const view = new DataView(status.buffer);
  const mode = view.getUint32(C.STAT_OFFSET_MODE, true);
  const uid = view.getUint32(C.STAT_OFFSET_UID, true);
  if ((mode & C.S_IFMT) !== C.S_IFDIR || uid !== effectiveUid() || (mode & 0o077) !== 0) {
    throw new PermissionDeniedError(ERRNO.EACCES, "open", {
      objectName: directory,
      message: `Refusing bootstrap directory "${directory}": it must be a directory of uid ` +
        `${effectiveUid()} with mode 0700 (found uid ${uid}, mode 0o${(mode & 0o7777).toString(8)}${
          (mode & C.S_IFMT) === C.S_IFDIR ? "" : ", not a directory"
        })`,
    });
  }
}

// One connect attempt: the descriptor, or the errno.
function tryConnect(path: string): number | { errno: number } {
  const { symbols } = libc();
  const fd = check(
    "socket",
    symbols.socket(C.AF_UNIX, C.SOCK_SEQPACKET | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
    path,
  );
  const address = new Uint8Array(C.SIZEOF_SOCKADDR_UN);
  new DataView(address.buffer).setUint16(0, C.AF_UNIX, true);
  const bytes = encoder.encode(path);
  if (bytes.length > C.SUN_PATH_MAX) {
    symbols.close(fd);
    throw new RangeError(`Invalid bootstrap directory: the socket path "${path}" is too long`);
  }
  address.set(bytes, 2);
  try {
    passCredentials(fd, path);
  } catch (error) {
    symbols.close(fd);
    throw error;
  }
  if (symbols.connect(fd, address, 2 + bytes.length + 1) === 0) return fd;
  const errno = lastErrno();
  symbols.close(fd);
  return { errno };
}

function peerPid(fd: number, path: string): number {
  const credentials = new Uint8Array(C.SIZEOF_UCRED);
  const length = new Uint32Array([C.SIZEOF_UCRED]);
  check(
    "getsockopt",
    libc().symbols.getsockopt(
      fd,
      C.SOL_SOCKET,
      C.SO_PEERCRED,
      credentials,
      new Uint8Array(length.buffer),
    ),
    path,
  );
  const view = new DataView(credentials.buffer);
  if (view.getUint32(4, true) !== effectiveUid()) {
    throw new PermissionDeniedError(ERRNO.EACCES, "connect", {
      objectName: path,
      message: `Refusing ${WHAT} at "${path}": it runs as uid ${view.getUint32(4, true)}`,
    });
  }
  return view.getInt32(0, true);
}

/**
 * A connection to this user's bootstrap server, which maps service names to ports. The
 * server is a separate process started on demand; it exits once idle (no clients, no
 * live services). Closing the connection does not affect rights obtained through it.
 *
 * @example A service checks in, a client looks it up
 * ```ts
 * import { Bootstrap } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * const directory = await Deno.makeTempDir();
 * try {
 *   using bootstrap = await Bootstrap.connect({ directory, idleMs: 100 });
 *   using service = await bootstrap.checkIn("example.echo");
 *   using client = await bootstrap.lookUp("example.echo");
 *   await client.send({ id: 1 });
 *   using message = await service.receive({ timeout: 1000 });
 *   assert.equal(message.id, 1);
 * } finally {
 *   await Deno.remove(directory, { recursive: true });
 * }
 * ```
 */
export class Bootstrap implements Disposable {
  readonly #fd: number;
  readonly #path: string;
  readonly #lifetime: Lifetime;
  readonly #sender = new PacketSender();
  readonly #receiver = new PacketReceiver();
  #last: Promise<unknown> = Promise.resolve();
  #requests = 0;
  /** The server's process id (the kernel's word, SO_PEERCRED). */
  readonly serverPid: number;
  /** The bootstrap directory. */
  readonly directory: string;

  private constructor(fd: number, directory: string, path: string) {
    this.#fd = fd;
    this.#path = path;
    this.directory = directory;
    try {
      this.serverPid = peerPid(fd, path);
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    this.#lifetime = new Lifetime(() => libc().symbols.close(this.#fd));
  }

  /**
   * Connects to the bootstrap server, starting it if none runs (a socket file left by
   * a server that died is replaced), and waits for the server's answer to a first
   * request, so the connection is known to be taken (not queued on a server exiting for
   * idleness). Waits at most `timeout` ms in all (default 20 s: a first start compiles
   * the server).
   */
  static async connect(options: BootstrapOptions = {}): Promise<Bootstrap> {
    const checked = validateOptions<BootstrapOptions>(options, "bootstrap");
    const directory = checked.directory === undefined
      ? defaultDirectory()
      : validateString(checked.directory, "bootstrap directory");
    if (directory.length === 0 || directory.includes("\0")) {
      throw new TypeError(`Invalid bootstrap directory: it is empty or contains NUL`);
    }
    const idleMs = checked.idleMs === undefined
      ? DEFAULT_IDLE_MS
      : validateInteger(checked.idleMs, "idleMs", 0, 2 ** 31 - 1);
    const wait = validateWaitOptions({
      timeout: checked.timeout ?? DEFAULT_START_TIMEOUT_MS,
      signal: checked.signal,
    });
    const path = `${directory}/${SOCKET_NAME}`;
    if (encoder.encode(path).length > C.SUN_PATH_MAX) {
      throw new RangeError(`Invalid bootstrap directory: the socket path "${path}" is too long`);
    }
    ensureDirectory(directory);
    // A server exiting for idleness may still have had our connection queued: it never
    // answers, and the next attempt finds no server and starts one.
    const deadline = performance.now() + (wait.timeout ?? DEFAULT_START_TIMEOUT_MS);
    while (true) {
      const remaining = () => Math.max(0, deadline - performance.now());
      const bootstrap = await Bootstrap.#open(directory, path, idleMs, {
        timeout: remaining(),
        signal: wait.signal,
      });
      try {
        await bootstrap.#exchange(OP_PING, "", [], { timeout: remaining(), signal: wait.signal });
        return bootstrap;
      } catch (error) {
        bootstrap.close();
        if (!(error instanceof ErrnoError && error.errno === ERRNO.ECONNRESET)) throw error;
      }
    }
  }

  // Connects, starting a server if none listens.
  static async #open(
    directory: string,
    path: string,
    idleMs: number,
    wait: WaitOptions,
  ): Promise<Bootstrap> {
    const first = tryConnect(path);
    if (typeof first === "number") return new Bootstrap(first, directory, path);
    if (first.errno !== ERRNO.ECONNREFUSED && first.errno !== ERRNO.ENOENT) {
      throw errnoError(first.errno, "connect", { objectName: path });
    }
    // No server: start one, under a lock so that one starter at a time decides.
    const { symbols } = libc();
    const lockFd = check(
      "open",
      symbols.open(
        cString(`${directory}/start.lock`),
        C.O_RDWR | C.O_CREAT | C.O_CLOEXEC | C.O_NOFOLLOW,
        0o600,
      ),
      directory,
    );
    const lifetime = new Lifetime(() => {});
    try {
      const lock = new Uint8Array(C.SIZEOF_FLOCK);
      new DataView(lock.buffer).setInt16(C.FLOCK_OFFSET_TYPE, C.F_WRLCK, true);
      let started = false;
      let starting: Promise<void> | undefined;
      const bootstrap = await waitFor({
        lifetime,
        attempt: () => {
          if (!started && symbols.fcntl_lock(lockFd, C.F_OFD_SETLK, lock) !== 0) return PENDING;
          const connected = tryConnect(path);
          if (typeof connected === "number") return new Bootstrap(connected, directory, path);
          if (!started) {
            started = true;
            starting = startServer(directory, idleMs);
            starting.catch(() => {});
          }
          return PENDING;
        },
        park: async (ms) => {
          await new Promise((resolve) => setTimeout(resolve, Math.min(ms, RETRY_MS)));
          return PENDING;
        },
        closedError: () => closedError("connect to", WHAT, path),
        timedOutError: (ms) => timedOutError("connect to", WHAT, path, ms),
        spin: 0,
      }, wait);
      try {
        await starting;
      } catch (error) {
        bootstrap.close();
        throw error;
      }
      return bootstrap;
    } finally {
      symbols.close(lockFd);
    }
  }

  /**
   * Checks in as the service `name`: returns the receive right of its port. Fails with
   * `AlreadyExistsError` while another live process has checked in under that name.
   */
  async checkIn(name: string, options: WaitOptions = {}): Promise<ReceiveRight> {
    const reply = await this.#request(OP_CHECK_IN, validateServiceName(name), [], options);
    const right = reply.rights[0];
    if (right?.kind !== KIND_RECEIVE) throw this.#malformed(reply);
    return receiveRightFromWire(right.fds, name);
  }

  /**
   * Looks up the service `name`: returns a send right to its port. Fails with
   * `NotFoundError` when no live service has that name (the message says whether it
   * died).
   */
  async lookUp(name: string, options: WaitOptions = {}): Promise<SendRight> {
    const reply = await this.#request(OP_LOOK_UP, validateServiceName(name), [], options);
    const right = reply.rights[0];
    if (right?.kind !== KIND_SEND) throw this.#malformed(reply);
    return makeSendRight(right.fds, name);
  }

  /**
   * Registers `right` under `name` (the old, deprecated form of check-in: the caller
   * keeps the receive right). `AlreadyExistsError` if the name is in use.
   */
  async register(name: string, right: SendRight, options: WaitOptions = {}): Promise<void> {
    validateServiceName(name);
    if (!(right instanceof SendRight)) {
      throw new TypeError(`Invalid right: expected a SendRight, got ${describe(right)}`);
    }
    await this.#request(OP_REGISTER, name, [right.wire(ROLE_BODY)], options);
  }

  #malformed(reply: ReceivedPacket): Error {
    for (const right of reply.rights) closeAll(right.fds);
    return errnoError(ERRNO.EBADMSG, "bootstrap", {
      objectName: this.#path,
      message: `The ${WHAT} at "${this.#path}" sent a malformed reply`,
    });
  }

  // Sends one request and returns the server's reply, whatever it says.
  #exchange(
    op: number,
    name: string,
    rights: WireRight[],
    options: WaitOptions,
  ): Promise<ReceivedPacket> {
    const run = async () => {
      if (this.#lifetime.closed) throw closedError("request", WHAT, this.#path);
      // Numbered (the server echoes it): a late reply to a request that timed out or
      // was aborted is dropped, never taken for this one's.
      this.#requests = this.#requests % 0xffff_ffff + 1;
      const number = this.#requests;
      const packet = {
        flags: 0,
        id: op,
        slot: -1,
        onceId: number,
        body: encoder.encode(name),
        rights,
      };
      let sent = false;
      const reply = await waitFor({
        lifetime: this.#lifetime,
        attempt: () => {
          if (!sent) {
            const outcome = this.#sender.send(this.#fd, packet, this.#path);
            if (outcome === "dead") throw this.#gone();
            if (outcome === "would-block") return PENDING;
            sent = true;
          }
          while (true) {
            let received: ReceivedPacket | null | undefined;
            try {
              received = this.#receiver.receive(this.#fd, this.#path);
            } catch (error) {
              if (error instanceof ErrnoError && error.errno === ERRNO.ECONNRESET) {
                throw this.#gone();
              }
              throw error;
            }
            if (received === null) throw this.#gone();
            if (received === undefined) return PENDING;
            if (received.onceId === number) return received;
            for (const right of received.rights) closeAll(right.fds);
          }
        },
        park: async (ms) => {
          await pollAny([this.#fd], [sent ? C.POLLIN : C.POLLOUT], ms);
          return PENDING;
        },
        closedError: () => closedError("request", WHAT, this.#path),
        timedOutError: (ms) => timedOutError("request", WHAT, this.#path, ms),
        spin: 0,
      }, options);
      return reply;
    };
    const result = this.#last.then(run, run);
    this.#last = result.catch(() => {});
    return result;
  }

  async #request(
    op: number,
    name: string,
    rights: WireRight[],
    options: WaitOptions,
  ): Promise<ReceivedPacket> {
    const reply = await this.#exchange(op, name, rights, options);
    if (reply.id === REPLY_OK) return reply;
    for (const right of reply.rights) closeAll(right.fds);
    const text = decoder.decode(reply.body);
    const message = `Bootstrap: ${text}`;
    if (reply.id === REPLY_NOT_FOUND) {
      throw new NotFoundError(ERRNO.ENOENT, "bootstrap", { objectName: name, message });
    }
    if (reply.id === REPLY_IN_USE) {
      throw new AlreadyExistsError(ERRNO.EEXIST, "bootstrap", { objectName: name, message });
    }
    if (reply.id === REPLY_SERVER_ERROR) {
      throw errnoError(
        reply.slot > 0 && reply.slot < 4096 ? reply.slot : ERRNO.EIO,
        "bootstrap",
        {
          objectName: name,
          message,
        },
      );
    }
    throw new TypeError(`Bootstrap request refused: ${text}`);
  }

  #gone(): Error {
    return errnoError(ERRNO.ECONNRESET, "bootstrap", {
      objectName: this.#path,
      message: `The ${WHAT} at "${this.#path}" went away`,
    });
  }

  /** Closes the connection (idempotent); rights obtained through it stay valid. */
  close(): void {
    this.#lifetime.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

// Starts the server as a daemon: through a shell that exits at once (so the server is
// no child of this process and outlives it), in a new session where setsid(1) exists
// (so a signal to this process's group, such as Ctrl-C, does not reach it).
async function startServer(directory: string, idleMs: number): Promise<void> {
  const server = new URL("./_mach_bootstrap_server.ts", import.meta.url);
  const script = `(if command -v setsid >/dev/null 2>&1; then exec setsid "$0" "$@"; ` +
    `else exec "$0" "$@"; fi) </dev/null >/dev/null 2>&1 &`;
  const status = await new Deno.Command("/bin/sh", {
    args: [
      "-c",
      script,
      Deno.execPath(),
      "run",
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      server.href,
      directory,
      String(idleMs),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) {
    throw new Error(`Could not start the ${WHAT}: /bin/sh exited with ${status.code}`);
  }
}

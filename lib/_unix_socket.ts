// Unix domain stream sockets through libc, for what Deno's own Unix sockets cannot do:
// a Deno.UnixConn hides its descriptor, so the kernel's word on the peer (SO_PEERCRED)
// is out of reach; Deno.listen gives the socket file the umask's mode, and its close
// removes whatever is at the path by then. Here the socket file gets its mode before
// anyone can connect, is removed only while it is still ours, and connecting checks the
// file's owner and mode on a descriptor (no path is looked up twice).
//
// Descriptors are non-blocking. Accepting, connecting and a write that finds the socket
// buffer full wait through the one wait loop (_wait.ts: poll(2) on the thread pool, in
// bounded slices); a connection's reads go through Node's net.Socket over our
// descriptor, in Deno's event loop.
import { Socket } from "node:net";
import { C, ERRNO } from "../ffi/constants.ts";
import {
  AlreadyExistsError,
  check,
  closedError,
  errnoBelieved,
  ErrnoError,
  errnoError,
  lastErrno,
  NotASocketError,
  PermissionDeniedError,
  timedOutError,
} from "../ffi/errno.ts";
import { libc } from "../ffi/libc.ts";
import { forgetEndpoint, recordEndpoint } from "./_endpoints.ts";
import { Lifetime } from "./_lifetime.ts";
import { checkOwnership, effectiveUid, fileStatus, type Ownership } from "./_owner.ts";
import { pollReady } from "./_poll.ts";
import { cString } from "./_validate.ts";
import { PENDING, waitFor, type WaitOptions } from "./_wait.ts";

/**
 * Who is at the other end of a Unix socket, as the kernel recorded it when the
 * connection was made (SO_PEERCRED): the peer's process id, effective user id and
 * effective group id at connect (client) or listen (server) time. No process can forge
 * these; a process that has since exited, or passed the descriptor on, is not followed.
 */
export interface PeerCredentials {
  /** Process id of the peer. */
  readonly pid: number;
  /** Its effective user id. */
  readonly uid: number;
  /** Its effective group id. */
  readonly gid: number;
}

const WHAT = "Unix socket";
const BACKLOG = 511;
// One send(2) moves at most this much (keeps results within an int).
const MAX_TRANSFER = 2 ** 30;
const CONNECT_RETRY_MS = 2;
const STARVED_RETRY_MS = 10;
const OUT_OF_RESOURCES: readonly number[] = [
  ERRNO.EMFILE,
  ERRNO.ENFILE,
  ERRNO.ENOBUFS,
  ERRNO.ENOMEM,
];
const encoder = new TextEncoder();

function socketAddress(path: string): [Uint8Array<ArrayBuffer>, number] {
  const bytes = encoder.encode(path);
  if (bytes.length > C.SUN_PATH_MAX) {
    throw new RangeError(`Invalid Unix socket path "${path.slice(0, 30)}...": too long`);
  }
  const address = new Uint8Array(C.SIZEOF_SOCKADDR_UN);
  new DataView(address.buffer).setUint16(0, C.AF_UNIX, true);
  address.set(bytes, 2);
  return [address, 2 + bytes.length + 1];
}

function newSocket(path: string): number {
  return check(
    "socket",
    libc().symbols.socket(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
    path,
  );
}

export function peerCredentialsOf(fd: number, path: string): PeerCredentials {
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
  return Object.freeze({
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
  });
}

// Opens `path` itself, never a symbolic link there (O_NOFOLLOW), as an O_PATH descriptor:
// what is checked through it is what is used through /proc/self/fd/N.
function openPathOnly(path: string, syscall: string): number {
  const fd = libc().symbols.open(cString(path), C.O_PATH | C.O_NOFOLLOW | C.O_CLOEXEC, 0);
  if (fd < 0) throw errnoError(lastErrno(), syscall, { objectName: path });
  return fd;
}

// O_PATH|O_NOFOLLOW opens a link itself rather than failing: its type tells.
function assertSocket(mode: number, path: string, syscall: string): void {
  if ((mode & C.S_IFMT) === C.S_IFLNK) {
    throw new PermissionDeniedError(ERRNO.ELOOP, syscall, {
      objectName: path,
      message: `Refusing ${WHAT} "${path}": it is a symbolic link (deno-ipc never follows ` +
        `a link planted where a socket should be)`,
    });
  }
  if ((mode & C.S_IFMT) !== C.S_IFSOCK) {
    throw new NotASocketError(ERRNO.ENOTSOCK, syscall, {
      objectName: path,
      message: `Cannot use "${path}" as a ${WHAT}: it is not a socket`,
    });
  }
}

/**
 * A connected Unix stream socket (the subset of `Deno.Conn` the framing uses). The
 * descriptor is made and checked here through libc. Reads go through Node's
 * `net.Socket` over that same descriptor, which waits in Deno's event loop (epoll): a
 * wait in poll(2) on the thread pool would cost each round trip about 40 µs more.
 * Writes are send(2) on this thread (see write()).
 */
export class UnixStream {
  readonly #socket: Socket;
  readonly #fd: number;
  // Closed with the socket: ends a write waiting for room (see write()).
  readonly #lifetime = new Lifetime(() => {});
  readonly #path: string;
  readonly #local: Deno.UnixAddr;
  readonly #remote: Deno.UnixAddr;
  #ended = false;
  #failure: unknown;
  #closed = false;
  #leftover: Uint8Array | undefined;
  #wake: (() => void) | undefined;
  #pending = 0;
  /** The kernel's record of the peer. */
  readonly peerCredentials: PeerCredentials;

  constructor(fd: number, path: string, accepted: boolean) {
    this.#fd = fd;
    this.#path = path;
    const named: Deno.UnixAddr = { transport: "unix", path };
    const unnamed: Deno.UnixAddr = { transport: "unix", path: "" };
    this.#local = accepted ? named : unnamed;
    this.#remote = accepted ? unnamed : named;
    try {
      this.peerCredentials = peerCredentialsOf(fd, path);
    } catch (error) {
      libc().symbols.close(fd);
      throw error;
    }
    // From here the socket owns the descriptor. Half-open: the peer's end of the stream
    // does not end our side (closeWrite is ours to call).
    this.#socket = new Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    // Like a Deno connection, an idle socket does not keep the process alive; a read or
    // write in progress does.
    this.#socket.unref();
    const wake = () => {
      const waiter = this.#wake;
      this.#wake = undefined;
      waiter?.();
    };
    this.#socket.on("readable", wake);
    this.#socket.on("end", () => {
      this.#ended = true;
      wake();
    });
    this.#socket.on("error", (error: Error) => {
      this.#failure ??= this.#errnoError(error, "read");
      wake();
    });
    this.#socket.on("close", wake);
  }

  /** Connects to the socket at `path` after checking its file's owner and mode. */
  static async connect(
    path: string,
    ownership: Ownership,
    options: WaitOptions,
  ): Promise<UnixStream> {
    return new UnixStream(
      await UnixStream.connectDescriptor(path, ownership, options),
      path,
      false,
    );
  }

  /**
   * As {@link UnixStream.connect}, but returns the connected non-blocking descriptor
   * itself (the caller owns it), for a handshake that passes descriptors (SCM_RIGHTS)
   * before the stream is wrapped.
   */
  static async connectDescriptor(
    path: string,
    ownership: Ownership,
    options: WaitOptions,
  ): Promise<number> {
    const { symbols } = libc();
    const pathFd = openPathOnly(path, "connect");
    let fd = -1;
    try {
      const status = fileStatus(pathFd, path);
      assertSocket(status.mode, path, "connect");
      checkOwnership([status.uid], status.mode & ~0o077, ownership, WHAT, path, "connect");
      // Connecting takes write permission on the file: read and execute bits grant
      // nobody anything, so only group/other write bits count as access.
      const writers = status.mode & 0o022 & ~ownership.allowModes;
      if (writers !== 0) {
        const octal = (bits: number) => `0o${bits.toString(8).padStart(3, "0")}`;
        throw new PermissionDeniedError(ERRNO.EACCES, "connect", {
          objectName: path,
          message: `Refusing ${WHAT} "${path}": its mode ${octal(status.mode & 0o777)} lets ` +
            `group/other connect (${octal(writers)}) beyond allowModes ` +
            `${octal(ownership.allowModes)} (another user could be the server; pass ` +
            `allowModes to accept it)`,
        });
      }
      fd = newSocket(path);
      const [address, length] = socketAddress(`/proc/self/fd/${pathFd}`);
      const lifetime = new Lifetime(() => {});
      await waitFor({
        lifetime,
        attempt: () => {
          if (symbols.connect(fd, address, length) === 0) return true;
          const errno = lastErrno();
          // EAGAIN: the listener's backlog is full; try again shortly.
          if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return PENDING;
          throw errnoError(errno, "connect", { objectName: path });
        },
        park: async (ms) => {
          await new Promise((resolve) => setTimeout(resolve, Math.min(ms, CONNECT_RETRY_MS)));
          return PENDING;
        },
        closedError: () => closedError("connect", WHAT, path),
        timedOutError: (ms) => timedOutError("connect", WHAT, path, ms),
        spin: 0,
      }, options);
      const connected = fd;
      fd = -1;
      return connected;
    } finally {
      if (fd >= 0) symbols.close(fd);
      symbols.close(pathFd);
    }
  }

  get localAddr(): Deno.UnixAddr {
    return this.#local;
  }

  get remoteAddr(): Deno.UnixAddr {
    return this.#remote;
  }

  /** Reads what is there (at least one byte); `null` at the end of the stream. */
  async read(buffer: Uint8Array): Promise<number | null> {
    this.#hold();
    try {
      while (true) {
        if (this.#closed) throw closedError("read", WHAT, this.#path);
        const chunk = this.#leftover ?? this.#socket.read() as Uint8Array | null;
        this.#leftover = undefined;
        if (chunk !== null && chunk.length > 0) {
          const length = Math.min(chunk.length, buffer.length);
          buffer.set(chunk.subarray(0, length));
          if (length < chunk.length) this.#leftover = chunk.subarray(length);
          return length;
        }
        if (this.#failure !== undefined) throw this.#failure;
        if (this.#ended) return null;
        await new Promise<void>((resolve) => this.#wake = resolve);
      }
    } finally {
      this.#release();
    }
  }

  /** Writes `bytes`; resolves once they were handed to the kernel. */
  /**
   * Writes some of `bytes` (at least one byte) with send(2) on this thread, waiting in
   * poll(2) only while the socket buffer is full. Writes bypass the Node socket: there,
   * a failed write (EPIPE: the peer closed) destroys the whole stream, and what the peer
   * sent before it closed, such as a server's refusal, would be lost unread.
   */
  write(bytes: Uint8Array): Promise<number> {
    const { symbols } = libc();
    const count = BigInt(Math.min(bytes.length, MAX_TRANSFER));
    return waitFor({
      lifetime: this.#lifetime,
      attempt: () => {
        // Node closed the descriptor when a read failed: never send to whatever file
        // reuses its number.
        if (this.#socket.destroyed) {
          throw this.#failure ?? closedError("send", WHAT, this.#path);
        }
        // MSG_NOSIGNAL: a peer that went away is EPIPE here, never a SIGPIPE.
        const flags = C.MSG_NOSIGNAL | C.MSG_DONTWAIT;
        let sent = symbols.send(this.#fd, bytes, count, flags);
        if (sent < 0 && !errnoBelieved("send")) sent = symbols.send(this.#fd, bytes, count, flags);
        if (sent >= 0) return sent;
        const errno = lastErrno();
        if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) return PENDING;
        throw errnoError(errno, "send", { objectName: this.#path });
      },
      park: async (ms) => {
        await pollReady(this.#fd, C.POLLOUT, ms);
        return PENDING;
      },
      closedError: () => closedError("send", WHAT, this.#path),
      timedOutError: (ms) => timedOutError("send", WHAT, this.#path, ms),
      spin: 0,
    });
  }

  /** Ends this side: the peer reads the end of the stream after what was sent. */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError("shutdown", WHAT, this.#path));
    if (this.#socket.destroyed) {
      return Promise.reject(this.#failure ?? closedError("shutdown", WHAT, this.#path));
    }
    try {
      check("shutdown", libc().symbols.shutdown(this.#fd, C.SHUT_WR), this.#path);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  /**
   * Resolves once closed and no write still waits in poll(2) on the thread pool (the
   * shutdown in close() makes such a poll return at once).
   */
  get released(): Promise<void> {
    return this.#lifetime.released;
  }

  /** Closes the socket (and its descriptor); a read or write waiting here rejects. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Closing a descriptor does not wake a poll(2) another thread has on it; a shutdown
    // does (POLLHUP), so a write parked on the pool ends now rather than after its slice.
    // A socket Node destroyed (a read error) has closed the descriptor: its number may
    // name another file by now.
    if (!this.#socket.destroyed) libc().symbols.shutdown(this.#fd, C.SHUT_RDWR);
    this.#lifetime.close();
    this.#socket.destroy();
    const waiter = this.#wake;
    this.#wake = undefined;
    waiter?.();
  }

  #hold(): void {
    if (this.#pending++ === 0) this.#socket.ref();
  }

  #release(): void {
    if (--this.#pending === 0 && !this.#closed) this.#socket.unref();
  }

  #errnoError(error: unknown, syscall: string): ErrnoError {
    const code = (error as { code?: unknown })?.code;
    const errno = typeof code === "string" && code in ERRNO
      ? ERRNO[code as keyof typeof ERRNO]
      : ERRNO.EIO;
    return errnoError(errno, syscall, { objectName: this.#path, cause: error });
  }
}

/**
 * A listening Unix stream socket whose file has mode `mode` (not the umask's) before
 * anyone can connect, and which `close()` removes only while it is still this socket.
 */
export class UnixListener {
  readonly #fd: number;
  readonly #lifetime: Lifetime;
  readonly #path: string;
  readonly #device: bigint;
  readonly #inode: bigint;

  private constructor(fd: number, path: string, device: bigint, inode: bigint) {
    this.#fd = fd;
    this.#path = path;
    this.#device = device;
    this.#inode = inode;
    this.#lifetime = new Lifetime(() => {});
  }

  /**
   * Resolves once closed and no accept still waits in poll(2) on the pool (the
   * shutdown in close() makes such a poll return at once).
   */
  get released(): Promise<void> {
    return this.#lifetime.released;
  }

  /**
   * Binds `path` (nothing may exist there: `AlreadyExistsError`), gives the new file
   * `mode`, then listens. Between bind and listen a connect is refused by the kernel,
   * so nobody connects through the umask's mode.
   */
  static listen(path: string, mode: number): UnixListener {
    const { symbols } = libc();
    const [address, length] = socketAddress(path);
    const fd = newSocket(path);
    let bound: { device: bigint; inode: bigint } | undefined;
    try {
      if (symbols.bind(fd, address, length) !== 0) {
        const errno = lastErrno();
        if (errno === ERRNO.EADDRINUSE) {
          throw new AlreadyExistsError(errno, "bind", {
            objectName: path,
            message: `Cannot listen at "${path}": something already exists there`,
          });
        }
        throw errnoError(errno, "bind", { objectName: path });
      }
      // The file bind made, opened without following links: if someone swapped the
      // path meanwhile (possible only in a directory they can write), it is not ours.
      const pathFd = openPathOnly(path, "bind");
      try {
        const status = fileStatus(pathFd, path);
        assertSocket(status.mode, path, "bind");
        if (status.uid !== effectiveUid()) {
          throw new PermissionDeniedError(ERRNO.EACCES, "bind", {
            objectName: path,
            message: `Refusing to listen at "${path}": the socket file there now belongs to ` +
              `uid ${status.uid}, not to this process (the path was replaced after bind)`,
          });
        }
        bound = { device: status.device, inode: status.inode };
        check("chmod", symbols.chmod(cString(`/proc/self/fd/${pathFd}`), mode), path);
      } finally {
        symbols.close(pathFd);
      }
      check("listen", symbols.listen(fd, BACKLOG), path);
      recordEndpoint("unix-socket", path);
      return new UnixListener(fd, path, bound.device, bound.inode);
    } catch (error) {
      symbols.close(fd);
      if (bound) removeIfSame(path, bound.device, bound.inode);
      throw error;
    }
  }

  get addr(): Deno.UnixAddr {
    return { transport: "unix", path: this.#path };
  }

  /** Waits for the next client. */
  async accept(): Promise<UnixStream> {
    return new UnixStream(await this.acceptDescriptor(), this.#path, true);
  }

  /** Waits for the next client; returns its non-blocking descriptor (the caller owns it). */
  acceptDescriptor(options: WaitOptions = {}): Promise<number> {
    const { symbols } = libc();
    const flags = C.SOCK_NONBLOCK | C.SOCK_CLOEXEC;
    let starved = false;
    return waitFor({
      lifetime: this.#lifetime,
      attempt: () => {
        const fd = symbols.accept4(this.#fd, null, null, flags);
        if (fd >= 0) return fd;
        const errno = lastErrno();
        // ECONNABORTED: that client gave up; wait for the next one.
        if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR || errno === ERRNO.ECONNABORTED) {
          return PENDING;
        }
        // Out of descriptors or memory (a flood of clients): the client waits in the
        // backlog while connections close; try again shortly rather than give up serving.
        if (OUT_OF_RESOURCES.includes(errno)) {
          starved = true;
          return PENDING;
        }
        throw errnoError(errno, "accept4", { objectName: this.#path });
      },
      park: async (ms) => {
        if (starved) {
          starved = false;
          await new Promise((resolve) => setTimeout(resolve, Math.min(ms, STARVED_RETRY_MS)));
        } else {
          await pollReady(this.#fd, C.POLLIN, ms);
        }
        return PENDING;
      },
      closedError: () => closedError("accept on", WHAT, this.#path),
      timedOutError: (ms) => timedOutError("accept on", WHAT, this.#path, ms),
      spin: 0,
    }, options);
  }

  /**
   * Stops listening, and removes the socket file if the path still names the file this
   * socket was bound to (same device and inode): never another process's socket or a
   * link put there since.
   */
  close(): void {
    // (as UnixStream.close) A shut-down listener refuses new clients at once, and a
    // poll(2) waiting on it returns.
    if (this.#lifetime.closed) return;
    const { symbols } = libc();
    symbols.shutdown(this.#fd, C.SHUT_RDWR);
    symbols.close(this.#fd);
    this.#lifetime.close();
    removeIfSame(this.#path, this.#device, this.#inode);
    forgetEndpoint(this.#path, this.#inode);
  }
}

// lstat(2) (fstatat without following a link), compare, then unlink(2), which never
// follows a link in the last component either.
/**
 * Whether a server listens on the socket file at `path` (never following a link there):
 * a connect that succeeds, or finds the backlog full, says so; a refused one says the
 * file is what a dead server left. The probe's connection is closed at once.
 */
export function isListening(path: string): boolean {
  const { symbols } = libc();
  let pathFd: number;
  try {
    pathFd = openPathOnly(path, "connect");
  } catch {
    return false;
  }
  let fd = -1;
  try {
    fd = newSocket(path);
    const [address, length] = socketAddress(`/proc/self/fd/${pathFd}`);
    if (symbols.connect(fd, address, length) === 0) return true;
    const errno = lastErrno();
    return errno === ERRNO.EAGAIN || errno === ERRNO.EINPROGRESS;
  } finally {
    if (fd >= 0) symbols.close(fd);
    symbols.close(pathFd);
  }
}

function removeIfSame(path: string, device: bigint, inode: bigint): void {
  const { symbols } = libc();
  const stat = new Uint8Array(C.SIZEOF_STAT);
  if (symbols.fstatat(C.AT_FDCWD, cString(path), stat, C.AT_SYMLINK_NOFOLLOW) !== 0) return;
  const view = new DataView(stat.buffer);
  const same = view.getBigUint64(C.STAT_OFFSET_DEV, true) === device &&
    view.getBigUint64(C.STAT_OFFSET_INO, true) === inode &&
    (view.getUint32(C.STAT_OFFSET_MODE, true) & C.S_IFMT) === C.S_IFSOCK;
  if (same) symbols.unlink(cString(path));
}

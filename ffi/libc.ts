// The one symbol table of deno-ipc. lib/ never calls Deno.dlopen: it imports `libc()`.
import { C, CURRENT_TARGET, PLATFORM_SUPPORTED, SUPPORTED_TARGETS } from "./constants.ts";

/** Every libc symbol deno-ipc binds, with its C prototype. */
export const LIBC_SYMBOLS = {
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
  // char *strerror(int errnum);
  strerror: { parameters: ["i32"], result: "pointer" },
  // const char *strerrorname_np(int errnum);  (glibc >= 2.32)
  strerrorname_np: { parameters: ["i32"], result: "pointer", optional: true },
  // pid_t getpid(void);
  getpid: { parameters: [], result: "i32" },
  // uid_t geteuid(void);
  geteuid: { parameters: [], result: "u32" },
  // int kill(pid_t pid, int sig);
  kill: { parameters: ["i32", "i32"], result: "i32" },
  // int raise(int sig);
  raise: { parameters: ["i32"], result: "i32" },
  // int setpgid(pid_t pid, pid_t pgid);
  setpgid: { parameters: ["i32", "i32"], result: "i32" },
  // pid_t getpgid(pid_t pid);
  getpgid: { parameters: ["i32"], result: "i32" },
  // int usleep(useconds_t usec);  on Deno's thread pool: a short sleep off the main thread
  usleep_async: { name: "usleep", parameters: ["u32"], result: "i32", nonblocking: true },
  // int sched_yield(void);
  sched_yield: { parameters: [], result: "i32" },

  // int open(const char *pathname, int flags, mode_t mode);  (variadic; integer arguments)
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // The same call on Deno's thread pool, for opens that wait (a FIFO waits for its peer).
  open_async: {
    name: "open",
    parameters: ["buffer", "i32", "u32"],
    result: "i32",
    nonblocking: true,
  },
  // int mkfifo(const char *pathname, mode_t mode);
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  // int unlink(const char *pathname);
  unlink: { parameters: ["buffer"], result: "i32" },
  // int link(const char *oldpath, const char *newpath);
  link: { parameters: ["buffer", "buffer"], result: "i32" },
  // int stat(const char *pathname, struct stat *statbuf);  (exported since glibc 2.33)
  stat: { parameters: ["buffer", "buffer"], result: "i32" },
  // int fstatat(int dirfd, const char *pathname, struct stat *statbuf, int flags);
  fstatat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  // int unlinkat(int dirfd, const char *pathname, int flags);
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // int chmod(const char *pathname, mode_t mode);
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  // int pipe2(int pipefd[2], int flags);
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  // int dup(int oldfd);
  dup: { parameters: ["i32"], result: "i32" },
  // int fcntl(int fd, int cmd, int arg);  (variadic; integer arguments)
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);  (declared int: callers pass at most
  // 1 GiB, and the low 32 bits of -1 are -1; a number result avoids a BigInt per call)
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // ssize_t write(int fd, const void *buf, size_t count);  (declared int, as read)
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout);  on Deno's thread pool
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // int fstat(int fd, struct stat *statbuf);  (exported since glibc 2.33)
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  // int posix_fallocate(int fd, off_t offset, off_t len);  returns an error number
  posix_fallocate: { parameters: ["i32", "i64", "i64"], result: "i32" },
  // int clock_gettime(clockid_t clockid, struct timespec *tp);
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },

  // Files (lib/file_log.ts, lib/file_lock.ts, lib/mapped_file.ts)
  // int openat(int dirfd, const char *pathname, int flags, mode_t mode);  (variadic; integers)
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  // int mkdirat(int dirfd, const char *pathname, mode_t mode);
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // ssize_t pread(int fd, void *buf, size_t count, off_t offset);  (declared int, as read)
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "i32" },
  // ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset);  (declared int)
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "i32" },
  // int ftruncate(int fd, off_t length);
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  // int fdatasync(int fd);  on Deno's thread pool: a flush can take milliseconds. Its errno
  // is lost; callers report a failure as EIO.
  fdatasync_async: { name: "fdatasync", parameters: ["i32"], result: "i32", nonblocking: true },
  // int fcntl(int fd, int cmd, struct flock *lock);  (F_OFD_SETLK, F_OFD_GETLK; variadic,
  // one pointer argument). F_OFD_SETLKW is never bound: it would block the calling thread.
  fcntl_lock: { name: "fcntl", parameters: ["i32", "i32", "buffer"], result: "i32" },
  // DIR *fdopendir(int fd);
  fdopendir: { parameters: ["i32"], result: "pointer" },
  // struct dirent *readdir(DIR *dirp);
  readdir: { parameters: ["pointer"], result: "pointer" },
  // int closedir(DIR *dirp);
  closedir: { parameters: ["pointer"], result: "i32" },
  // int msync(void *addr, size_t length, int flags);
  msync: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  // int inotify_init1(int flags);
  inotify_init1: { parameters: ["i32"], result: "i32" },
  // int inotify_add_watch(int fd, const char *pathname, uint32_t mask);
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },

  // int socket(int domain, int type, int protocol);
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  // int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen);
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int listen(int sockfd, int backlog);
  listen: { parameters: ["i32", "i32"], result: "i32" },
  // int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  // int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  // int shutdown(int sockfd, int how);
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // int getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen);
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  // ssize_t send(int sockfd, const void *buf, size_t len, int flags);  (declared int, as write)
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },

  // int shm_open(const char *name, int oflag, mode_t mode);  (in libc.so.6 since glibc 2.34)
  shm_open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  // int shm_unlink(const char *name);
  shm_unlink: { parameters: ["buffer"], result: "i32" },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int munmap(void *addr, size_t length);
  munmap: { parameters: ["pointer", "usize"], result: "i32" },

  // key_t ftok(const char *pathname, int proj_id);
  ftok: { parameters: ["buffer", "i32"], result: "i32" },
  // int msgget(key_t key, int msgflg);
  msgget: { parameters: ["i32", "i32"], result: "i32" },
  // int msgsnd(int msqid, const void *msgp, size_t msgsz, int msgflg);
  msgsnd: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  // ssize_t msgrcv(int msqid, void *msgp, size_t msgsz, long msgtyp, int msgflg);
  // (declared int: a message is at most msgmax bytes)
  msgrcv: { parameters: ["i32", "buffer", "usize", "i64", "i32"], result: "i32" },
  // int msgctl(int msqid, int cmd, struct msqid_ds *buf);
  msgctl: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // mqd_t mq_open(const char *name, int oflag, mode_t mode, struct mq_attr *attr);
  // (variadic; integer and pointer arguments; mqd_t is an int on Linux)
  mq_open: { parameters: ["buffer", "i32", "u32", "buffer"], result: "i32" },
  // int mq_close(mqd_t mqdes);
  mq_close: { parameters: ["i32"], result: "i32" },
  // int mq_unlink(const char *name);
  mq_unlink: { parameters: ["buffer"], result: "i32" },
  // int mq_send(mqd_t mqdes, const char *msg_ptr, size_t msg_len, unsigned int msg_prio);
  mq_send: { parameters: ["i32", "buffer", "usize", "u32"], result: "i32" },
  // ssize_t mq_receive(mqd_t mqdes, char *msg_ptr, size_t msg_len, unsigned int *msg_prio);
  // (declared int: a message is at most msgsize_max bytes)
  mq_receive: { parameters: ["i32", "buffer", "usize", "buffer"], result: "i32" },
  // int mq_getattr(mqd_t mqdes, struct mq_attr *attr);
  mq_getattr: { parameters: ["i32", "buffer"], result: "i32" },

  // sem_t *sem_open(const char *name, int oflag, mode_t mode, unsigned int value);
  // (variadic in C; with integer arguments only the x86_64 and aarch64 Linux ABIs pass
  // them exactly as for a fixed prototype)
  sem_open: { parameters: ["buffer", "i32", "u32", "u32"], result: "pointer" },
  // int sem_close(sem_t *sem);
  sem_close: { parameters: ["pointer"], result: "i32" },
  // int sem_unlink(const char *name);
  sem_unlink: { parameters: ["buffer"], result: "i32" },
  // int sem_init(sem_t *sem, int pshared, unsigned int value);
  sem_init: { parameters: ["pointer", "i32", "u32"], result: "i32" },
  // int sem_destroy(sem_t *sem);
  sem_destroy: { parameters: ["pointer"], result: "i32" },
  // int sem_post(sem_t *sem);
  sem_post: { parameters: ["pointer"], result: "i32" },
  // int sem_trywait(sem_t *sem);
  sem_trywait: { parameters: ["pointer"], result: "i32" },
  // int sem_getvalue(sem_t *sem, int *sval);
  sem_getvalue: { parameters: ["pointer", "buffer"], result: "i32" },
  // int sem_clockwait(sem_t *sem, clockid_t clockid, const struct timespec *abstime);
  // Runs on Deno's thread pool: errno of this call is lost (see ffi/errno.ts).
  sem_clockwait_async: {
    name: "sem_clockwait",
    parameters: ["pointer", "i32", "buffer"],
    result: "i32",
    nonblocking: true,
  },

  // long syscall(SYS_futex, uint32_t *uaddr, int op, uint32_t val, const struct timespec *timeout,
  //              uint32_t *uaddr2, uint32_t val3);
  // (variadic; integer and pointer arguments only). Declared as int: futex results fit.
  futex_wake: {
    name: "syscall",
    parameters: ["i64", "pointer", "i32", "i32", "pointer", "pointer", "i32"],
    result: "i32",
  },
  // long syscall(SYS_pidfd_open, pid_t pid, unsigned int flags);  a descriptor that
  // names one process: it never refers to a later process that reuses the pid.
  pidfd_open: { name: "syscall", parameters: ["i64", "i32", "u32"], result: "i32" },
  // long syscall(SYS_pidfd_send_signal, int pidfd, int sig, siginfo_t *info, unsigned int flags);
  pidfd_send_signal: {
    name: "syscall",
    parameters: ["i64", "i32", "i32", "pointer", "u32"],
    result: "i32",
  },
  // The same call with FUTEX_WAIT, on Deno's thread pool: errno of this call is lost.
  futex_wait_async: {
    name: "syscall",
    parameters: ["i64", "pointer", "i32", "i32", "buffer", "pointer", "i32"],
    result: "i32",
    nonblocking: true,
  },

  // Mach ports (lib/mach_port.ts, lib/_mach_*.ts)
  // int socketpair(int domain, int type, int protocol, int sv[2]);
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // int setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen);
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  // ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags);  (declared int, as send)
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags);  (declared int, as read)
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout);  on this thread, timeout 0 only
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // int memfd_create(const char *name, unsigned int flags);
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  // ALPC (lib/alpc.ts, lib/_alpc_*.ts): peer memory (sendmsg, recvmsg and memfd_create above).
  // ssize_t process_vm_readv(pid_t pid, const struct iovec *local_iov, unsigned long liovcnt,
  //                          const struct iovec *remote_iov, unsigned long riovcnt,
  //                          unsigned long flags);
  process_vm_readv: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
  },
  // ssize_t process_vm_writev(pid_t pid, const struct iovec *local_iov, unsigned long liovcnt,
  //                           const struct iovec *remote_iov, unsigned long riovcnt,
  //                           unsigned long flags);
  process_vm_writev: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
  },
  // The same two calls on Deno's thread pool, for copies of many megabytes: their errno is
  // lost; a failure is repeated synchronously for one byte to learn it.
  process_vm_readv_async: {
    name: "process_vm_readv",
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
    nonblocking: true,
  },
  process_vm_writev_async: {
    name: "process_vm_writev",
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
    nonblocking: true,
  },
  // lib/_endpoints.ts (registry of FIFOs and Unix sockets):
  // char *getcwd(char *buf, size_t size);  (NULL on failure)
  getcwd: { parameters: ["buffer", "usize"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded libc: `libc().symbols.NAME(...)`. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

/** Environment variable that overrides the path of the C library. */
export const LIBC_PATH_ENV = "DENO_IPC_LIBC";

let loaded: Libc | undefined;

/** Thrown on first use of deno-ipc on an OS/architecture it has no constants for. */
export class UnsupportedPlatformError extends Error {
  /** Creates the error for the current target. */
  constructor() {
    super(
      `deno-ipc does not support ${CURRENT_TARGET} yet: supported targets are ${
        SUPPORTED_TARGETS.join(", ")
      }`,
    );
    this.name = "UnsupportedPlatformError";
  }
}

function libcPath(): string {
  const state = Deno.permissions.querySync({ name: "env", variable: LIBC_PATH_ENV }).state;
  const override = state === "granted" ? Deno.env.get(LIBC_PATH_ENV) : undefined;
  return override || C.libcPath;
}

/**
 * Loads libc on first call and returns it. Throws `Deno.errors.NotCapable` naming
 * `--allow-ffi` when FFI access was not granted, and {@link UnsupportedPlatformError} on
 * a platform without a constants module.
 */
export function libc(): Libc {
  if (loaded) return loaded;
  if (!PLATFORM_SUPPORTED) throw new UnsupportedPlatformError();
  const path = libcPath();
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    throw new Deno.errors.NotCapable(
      `deno-ipc needs FFI access to call ${path}: run again with the --allow-ffi flag ` +
        `(note that --allow-ffi grants full access to the process)`,
    );
  }
  loaded = Deno.dlopen(path, LIBC_SYMBOLS);
  // The first call of a symbol sometimes leaves errno changed (ENOENT, measured: about 1
  // process in 30): were that the first __errno_location() call, made by lastErrno()
  // right after a failed call, it would report the wrong errno. Call it once now.
  loaded.symbols.__errno_location();
  return loaded;
}

// Constants of Linux on x86_64 with glibc. Values are from the kernel's UAPI headers
// (asm-generic/fcntl.h, asm-generic/mman-common.h, asm-generic/errno*.h) and glibc's
// bits/ headers for this ABI. A port to another OS or architecture adds a sibling file
// with the same shape (see ../constants.ts).

/** Platform constants for Linux x86_64 (glibc). */
export const LINUX_X86_64 = {
  target: "linux-x86_64",
  libcPath: "libc.so.6",

  // <fcntl.h>
  O_RDONLY: 0,
  O_WRONLY: 0o1,
  O_RDWR: 0o2,
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_TRUNC: 0o1000,
  O_NONBLOCK: 0o4000,
  O_PATH: 0o10000000,
  O_NOFOLLOW: 0o400000,
  AT_REMOVEDIR: 0x200,
  F_SETFD: 2,
  FD_CLOEXEC: 1,
  O_CLOEXEC: 0o2000000,

  // <fcntl.h> fcntl commands
  F_GETFL: 3,
  F_SETFL: 4,
  F_DUPFD_CLOEXEC: 1030,
  // open-file-description locks (fcntl(2)) and struct flock for x86_64
  F_OFD_GETLK: 36,
  F_OFD_SETLK: 37,
  F_RDLCK: 0,
  F_WRLCK: 1,
  F_UNLCK: 2,
  SEEK_SET: 0,
  SIZEOF_FLOCK: 32,
  FLOCK_OFFSET_TYPE: 0, // l_type: i16
  FLOCK_OFFSET_WHENCE: 2, // l_whence: i16
  FLOCK_OFFSET_START: 8, // l_start: i64
  FLOCK_OFFSET_LEN: 16, // l_len: i64
  FLOCK_OFFSET_PID: 24, // l_pid: i32

  // <sys/inotify.h>
  IN_NONBLOCK: 0o4000,
  IN_CLOEXEC: 0o2000000,
  IN_MODIFY: 0x002,
  IN_MOVED_TO: 0x080,
  IN_CREATE: 0x100,
  IN_ONLYDIR: 0x0100_0000,

  // <dirent.h>: struct dirent64 (glibc's readdir on x86_64)
  DIRENT_OFFSET_NAME: 19, // d_name: char[256]

  // <poll.h>
  POLLIN: 0x001,
  POLLOUT: 0x004,
  POLLERR: 0x008,
  POLLHUP: 0x010,
  POLLNVAL: 0x020,
  SIZEOF_POLLFD: 8,

  // <sys/mman.h>
  PROT_READ: 0x1,
  PROT_WRITE: 0x2,
  MAP_SHARED: 0x01,
  MS_SYNC: 4,
  /** `MAP_FAILED` is `(void *) -1`. */
  MAP_FAILED: 0xffff_ffff_ffff_ffffn,

  // <sys/ipc.h>, <sys/msg.h>
  IPC_PRIVATE: 0,
  IPC_CREAT: 0o1000,
  IPC_EXCL: 0o2000,
  IPC_NOWAIT: 0o4000,
  IPC_RMID: 0,
  IPC_SET: 1,
  IPC_STAT: 2,
  IPC_INFO: 3,
  MSG_NOERROR: 0o10000,
  MSG_EXCEPT: 0o20000,
  SIZEOF_MSQID_DS: 120,
  MSQID_OFFSET_MODE: 20, // msg_perm.mode: u32
  MSQID_OFFSET_UID: 4, // msg_perm.uid: u32
  MSQID_OFFSET_CUID: 12, // msg_perm.cuid: u32 (the creator)
  MSQID_OFFSET_STIME: 48, // i64 seconds
  MSQID_OFFSET_RTIME: 56,
  MSQID_OFFSET_CBYTES: 72, // u64
  MSQID_OFFSET_QNUM: 80, // u64
  MSQID_OFFSET_QBYTES: 88, // u64
  MSQID_OFFSET_LSPID: 96, // i32
  MSQID_OFFSET_LRPID: 100, // i32
  MSGINFO_OFFSET_MSGMAX: 8, // struct msginfo: int msgmax
  MSGINFO_OFFSET_MSGMNB: 12, // int msgmnb
  SIZEOF_MSGINFO: 32,

  // <mqueue.h>: struct mq_attr of four longs (and reserved space)
  SIZEOF_MQ_ATTR: 64,
  MQ_ATTR_OFFSET_MAXMSG: 8,
  MQ_ATTR_OFFSET_MSGSIZE: 16,
  MQ_ATTR_OFFSET_CURMSGS: 24,
  MQ_PRIO_MAX: 32768,

  // <semaphore.h>
  /** `SEM_FAILED` is `(sem_t *) 0` on Linux. */
  SEM_FAILED: 0n,
  SIZEOF_SEM_T: 32,
  ALIGNOF_SEM_T: 8,
  SEM_VALUE_MAX: 0x7fff_ffff,

  // <time.h>
  CLOCK_REALTIME: 0,
  CLOCK_MONOTONIC: 1,
  SIZEOF_TIMESPEC: 16,

  // <sys/stat.h>: struct stat layout for x86_64
  SIZEOF_STAT: 144,
  STAT_OFFSET_DEV: 0, // st_dev: u64
  STAT_OFFSET_INO: 8, // st_ino: u64
  STAT_OFFSET_NLINK: 16, // st_nlink: u64
  STAT_OFFSET_MODE: 24, // st_mode: u32
  STAT_OFFSET_UID: 28, // st_uid: u32
  STAT_OFFSET_SIZE: 48, // st_size: i64
  S_IFMT: 0o170000,
  S_IFIFO: 0o010000,
  S_IFREG: 0o100000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  O_DIRECTORY: 0o200000,
  AT_FDCWD: -100,
  AT_SYMLINK_NOFOLLOW: 0x100,

  // <sys/socket.h>, <sys/un.h>
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_PEERCRED: 17,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  /** struct sockaddr_un: sa_family_t (u16) then sun_path[108]. */
  SIZEOF_SOCKADDR_UN: 110,
  SUN_PATH_MAX: 107,
  /** struct ucred: pid (i32), uid (u32), gid (u32). */
  SIZEOF_UCRED: 12,
  S_IFDIR: 0o040000,

  // <limits.h>
  NAME_MAX: 255,
  PATH_MAX: 4096,
  PIPE_BUF: 4096,

  // <sys/syscall.h>, <linux/futex.h>
  SYS_futex: 202n,
  SYS_pidfd_open: 434n,
  SYS_pidfd_send_signal: 424n,
  FUTEX_WAIT: 0,
  FUTEX_WAKE: 1,
  INT_MAX: 0x7fff_ffff,

  /** Where the kernel exposes POSIX shared memory objects and named semaphores. */
  shmDirectory: "/dev/shm",
  /** glibc names a semaphore's backing file "sem.NAME" inside the shm directory. */
  semaphoreFilePrefix: "sem.",

  // Mach ports (lib/mach_port.ts) and ALPC (lib/_alpc_*.ts): <sys/socket.h> SOCK_SEQPACKET
  // and control messages, <sys/mman.h> memfd_create, <fcntl.h> file seals
  SOCK_SEQPACKET: 5,
  SO_PASSCRED: 16,
  SCM_RIGHTS: 1,
  SCM_CREDENTIALS: 2,
  MSG_TRUNC: 0x20,
  MSG_CTRUNC: 0x08,
  MSG_CMSG_CLOEXEC: 0x4000_0000,
  /** struct msghdr on x86_64: name, namelen (+pad), iov, iovlen, control, controllen, flags. */
  SIZEOF_MSGHDR: 56,
  /** struct cmsghdr: cmsg_len (size_t), cmsg_level (int), cmsg_type (int). */
  SIZEOF_CMSGHDR: 16,
  /** At most this many descriptors travel in one SCM_RIGHTS message (SCM_MAX_FD). */
  SCM_MAX_FD: 253,
  MFD_CLOEXEC: 0x1,
  MFD_ALLOW_SEALING: 0x2,
  F_ADD_SEALS: 1033,
  F_SEAL_SEAL: 0x1,
  F_SEAL_SHRINK: 0x2,
  F_SEAL_GROW: 0x4,
  F_SEAL_WRITE: 0x8,
  F_DUPFD: 0,
  F_GET_SEALS: 1034,
  MAP_PRIVATE: 0x02,
} as const;

/** Signal numbers of Linux on x86_64 (asm/signal.h). */
export const LINUX_X86_64_SIGNALS = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
} as const satisfies Record<string, number>;

/** errno values of Linux (asm-generic/errno-base.h and asm-generic/errno.h). */
export const LINUX_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  ENOMSG: 42,
  EIDRM: 43,
  ETIME: 62,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ENOTSOCK: 88,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  ESTALE: 116,
  ECONNREFUSED: 111,
  EINPROGRESS: 115,
  ECANCELED: 125,
  EOWNERDEAD: 130,
  // Mach ports (lib/mach_port.ts)
  ENOTCONN: 107,
  EALREADY: 114,
} as const;

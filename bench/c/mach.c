/* Mach-like messaging in C, the baseline of bench/mach.ts: a SOCK_SEQPACKET socketpair
 * between two processes, rights as descriptors in SCM_RIGHTS.
 *   mach oneway SIZE COUNT   the child sends COUNT packets of 32 + SIZE bytes
 *   mach rpc COUNT           each request carries a reply descriptor (a dup of the reply
 *                            socket, the "send-once right"); the child replies on it
 *                            and closes it
 *   mach ool SIZE COUNT      the child fills a memfd of SIZE bytes once, seals it, and
 *                            sends its descriptor COUNT times; the parent maps it
 *                            privately and reads one byte per page
 *   mach inline SIZE COUNT   the same SIZE bytes sent COUNT times through the socket in
 *                            64 KiB packets */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEADER 32
#define CHUNK 65536

static void send_fd(int socket, const void *data, size_t length, int fd) {
  struct iovec iov = {(void *)data, length};
  char control[CMSG_SPACE(sizeof(int))];
  struct msghdr message = {0};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  if (sendmsg(socket, &message, MSG_NOSIGNAL) < 0) die("sendmsg");
}

static ssize_t receive_fd(int socket, void *buffer, size_t length, int *fd) {
  struct iovec iov = {buffer, length};
  char control[CMSG_SPACE(sizeof(int))];
  struct msghdr message = {0};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  ssize_t n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  if (n < 0) die("recvmsg");
  *fd = -1;
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
  if (cmsg && cmsg->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
  return n;
}

int main(int argc, char **argv) {
  const char *mode = argv[1];
  int rpc = strcmp(mode, "rpc") == 0;
  long size = rpc ? 64 : atol(argv[2]);
  long count = atol(argv[rpc ? 2 : 3]);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair)) die("socketpair");
  unsigned char *buffer = calloc(1, HEADER + CHUNK);
  pid_t child = bench_fork();
  if (child == 0) {
    close(pair[0]);
    if (rpc) {
      for (long i = 0; i < count; i++) {
        int reply;
        ssize_t n = receive_fd(pair[1], buffer, HEADER + CHUNK, &reply);
        send_fd(reply, buffer, n, -1);
        close(reply);
      }
    } else if (strcmp(mode, "oneway") == 0) {
      for (long i = 0; i < count; i++) send_fd(pair[1], buffer, HEADER + size, -1);
    } else if (strcmp(mode, "ool") == 0) {
      int fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (fd < 0 || posix_fallocate(fd, 0, size)) die("memfd");
      unsigned char *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (region == MAP_FAILED) die("mmap");
      memset(region, 7, size);
      munmap(region, size);
      if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
        die("seal");
      for (long i = 0; i < count; i++) send_fd(pair[1], buffer, HEADER, fd);
      close(fd);
    } else {
      unsigned char *data = malloc(size + HEADER);
      memset(data, 7, size + HEADER);
      for (long i = 0; i < count; i++) {
        for (long done = 0; done < size; done += CHUNK) {
          long length = size - done < CHUNK ? size - done : CHUNK;
          send_fd(pair[1], data + done, HEADER + length, -1);
        }
      }
    }
    _exit(0);
  }
  close(pair[1]);
  double started = 0;
  long checksum = 0;
  if (rpc) {
    int replies[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, replies)) die("socketpair");
    double *samples = malloc(sizeof(double) * count);
    started = now_us();
    for (long i = 0; i < count; i++) {
      double sent = now_us();
      send_fd(pair[0], buffer, HEADER + 64, replies[1]);
      if (recv(replies[0], buffer, HEADER + CHUNK, 0) <= 0) die("recv");
      samples[i] = now_us() - sent;
    }
    double seconds = (now_us() - started) / 1e6;
    waitpid(child, NULL, 0);
    print_result(count, (double)count * 64, seconds, samples, count);
    return 0;
  }
  long messages = strcmp(mode, "inline") == 0 ? count * ((size + CHUNK - 1) / CHUNK) : count;
  for (long i = 0; i < messages; i++) {
    int fd;
    ssize_t n = receive_fd(pair[0], buffer, HEADER + CHUNK, &fd);
    if (n <= 0) die("receive");
    if (i == 0) started = now_us();
    if (fd >= 0) {
      unsigned char *region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (region == MAP_FAILED) die("mmap");
      for (long at = 0; at < size; at += 4096) checksum += region[at];
      munmap(region, size);
      close(fd);
    } else {
      checksum += buffer[HEADER];
    }
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  if (checksum < 0) return 1;
  print_result(count, (double)size * count, seconds, NULL, 0);
  return 0;
}

/* Framed messages over a TCP (loopback) or Unix-domain stream socket between two
 * processes, as bench/sock.ts does: each message is a 4-byte big-endian length and the
 * bytes. throughput: the child sends COUNT messages, the parent reads and unframes them.
 * pingpong: the parent sends a framed request, the child echoes it, COUNT times (the RPC
 * round trip without marshalling).
 * Usage: sock throughput|pingpong tcp|unix MESSAGE_BYTES COUNT */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_all(int fd, const unsigned char *data, size_t length) {
  for (size_t done = 0; done < length;) {
    ssize_t n = write(fd, data + done, length - done);
    if (n <= 0) die("write");
    done += n;
  }
}

/* A buffered reader that returns whole frames. */
static unsigned char buffer[1 << 20];
static size_t start, end;
static unsigned char *read_frame(int fd, uint32_t *length) {
  for (;;) {
    if (end - start >= 4) {
      uint32_t n;
      memcpy(&n, buffer + start, 4);
      n = ntohl(n);
      if (end - start >= 4 + n) {
        unsigned char *frame = buffer + start + 4;
        start += 4 + n;
        *length = n;
        return frame;
      }
    }
    if (start > 0) {
      memmove(buffer, buffer + start, end - start);
      end -= start;
      start = 0;
    }
    ssize_t got = read(fd, buffer + end, sizeof buffer - end);
    if (got <= 0) die("read");
    end += got;
  }
}

int main(int argc, char **argv) {
  int pingpong = strcmp(argv[1], "pingpong") == 0;
  int tcp = strcmp(argv[2], "tcp") == 0;
  long size = atol(argv[3]), count = atol(argv[4]);
  int listener, one = 1;
  struct sockaddr_in in = {0};
  struct sockaddr_un un = {0};
  socklen_t in_length = sizeof in;
  if (tcp) {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&in, sizeof in)) die("bind");
    getsockname(listener, (struct sockaddr *)&in, &in_length);
  } else {
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof un.sun_path, "/tmp/deno-ipc-bench-%d.sock", getpid());
    unlink(un.sun_path);
    if (bind(listener, (struct sockaddr *)&un, sizeof un)) die("bind");
  }
  if (listen(listener, 1)) die("listen");
  unsigned char *frame = calloc(1, 4 + size);
  uint32_t header = htonl((uint32_t)size);
  memcpy(frame, &header, 4);
  pid_t child = bench_fork();
  if (child == 0) {
    int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
    if (tcp ? connect(fd, (struct sockaddr *)&in, sizeof in)
            : connect(fd, (struct sockaddr *)&un, sizeof un)) die("connect");
    if (tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint32_t length;
    for (long i = 0; i < count; i++) {
      if (pingpong) {
        unsigned char *request = read_frame(fd, &length);
        memcpy(frame + 4, request, length);
      }
      write_all(fd, frame, 4 + size);
    }
    _exit(0);
  }
  int fd = accept(listener, NULL, NULL);
  if (fd < 0) die("accept");
  if (tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  double *samples = pingpong ? malloc(sizeof(double) * count) : NULL;
  uint32_t length;
  double started = now_us();
  for (long i = 0; i < count; i++) {
    if (pingpong) {
      double t = now_us();
      write_all(fd, frame, 4 + size);
      read_frame(fd, &length);
      samples[i] = now_us() - t;
    } else {
      read_frame(fd, &length);
      if (i == 0) started = now_us();
    }
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  if (!tcp) unlink(un.sun_path);
  long measured = pingpong ? count : count - 1;
  print_result(measured, (double)measured * size, seconds, samples, pingpong ? count : 0);
  return 0;
}

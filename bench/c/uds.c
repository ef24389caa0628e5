/* One-way 64-byte messages over a Unix-domain stream socket between two processes: the
 * child write()s each message, the parent read()s until all bytes arrived.
 * Usage: uds MESSAGE_BYTES COUNT */
#include "common.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long size = atol(argv[1]), count = atol(argv[2]);
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) die("socketpair");
  pid_t child = bench_fork();
  if (child == 0) {
    close(pair[0]);
    unsigned char *message = calloc(1, size);
    for (long i = 0; i < count; i++) {
      for (long done = 0; done < size;) {
        ssize_t n = write(pair[1], message + done, size - done);
        if (n <= 0) die("write");
        done += n;
      }
    }
    _exit(0);
  }
  close(pair[1]);
  unsigned char buffer[65536];
  long total = size * count, received = 0;
  double started = 0;
  while (received < total) {
    ssize_t n = read(pair[0], buffer, sizeof buffer);
    if (n <= 0) die("read");
    if (received == 0) started = now_us();
    received += n;
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  print_result(count, (double)total, seconds, NULL, 0);
  return 0;
}

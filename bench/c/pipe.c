/* Pipes and FIFOs between two processes.
 * Usage: pipe throughput MESSAGE_BYTES COUNT   the child write()s each message, the parent
 *                                              read()s 64 KiB at a time until all arrived
 *        pipe fifo MESSAGE_BYTES COUNT         the same through a FIFO in /tmp
 *        pipe pingpong MESSAGE_BYTES COUNT     two pipes, one message each way per round */
#include "common.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_all(int fd, const unsigned char *data, long size) {
  for (long done = 0; done < size;) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) die("write");
    done += n;
  }
}

static void read_exactly(int fd, unsigned char *data, long size) {
  for (long done = 0; done < size;) {
    ssize_t n = read(fd, data + done, size - done);
    if (n <= 0) die("read");
    done += n;
  }
}

int main(int argc, char **argv) {
  const char *mode = argv[1];
  long size = atol(argv[2]), count = atol(argv[3]);
  unsigned char *message = calloc(1, size), buffer[65536];
  if (strcmp(mode, "pingpong") == 0) {
    int there[2], back[2];
    if (pipe(there) || pipe(back)) die("pipe");
    if (bench_fork() == 0) {
      for (long i = 0; i < count; i++) {
        read_exactly(there[0], buffer, size);
        write_all(back[1], buffer, size);
      }
      _exit(0);
    }
    double *samples = malloc(sizeof(double) * count), started = now_us();
    for (long i = 0; i < count; i++) {
      double t = now_us();
      write_all(there[1], message, size);
      read_exactly(back[0], buffer, size);
      samples[i] = now_us() - t;
    }
    double seconds = (now_us() - started) / 1e6;
    wait(NULL);
    print_result(count, (double)count * size, seconds, samples, count);
    return 0;
  }
  int fds[2];
  char path[64] = "";
  if (strcmp(mode, "fifo") == 0) {
    snprintf(path, sizeof path, "/tmp/deno-ipc-bench-%d.fifo", getpid());
    if (mkfifo(path, 0600)) die("mkfifo");
  } else if (pipe(fds)) {
    die("pipe");
  }
  if (bench_fork() == 0) {
    int out = path[0] ? open(path, O_WRONLY) : fds[1];
    if (!path[0]) close(fds[0]);
    for (long i = 0; i < count; i++) write_all(out, message, size);
    _exit(0);
  }
  int in = path[0] ? open(path, O_RDONLY) : fds[0];
  if (!path[0]) close(fds[1]);
  long total = size * count, received = 0;
  double started = 0;
  while (received < total) {
    ssize_t n = read(in, buffer, sizeof buffer);
    if (n <= 0) die("read");
    if (received == 0) started = now_us();
    received += n;
  }
  double seconds = (now_us() - started) / 1e6;
  wait(NULL);
  if (path[0]) unlink(path);
  print_result(count, (double)total, seconds, NULL, 0);
  return 0;
}

/* The file log's workloads in C, with the same framing (24-byte header, CRC-32C), the
 * same open-file-description lock per append, and inotify to wait.
 * Usage: file_log throughput MESSAGE_BYTES COUNT   the child appends, the parent follows
 *        file_log pingpong MESSAGE_BYTES COUNT     two logs, one record each way per round */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* CRC-32C slice-by-8, as lib/_crc32c.ts computes it. */
static uint32_t table[8][256];

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
    table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++)
    for (int t = 1; t < 8; t++) table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
}

static uint32_t crc32c(const unsigned char *p, size_t n) {
  uint32_t c = ~0u;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo;
    memcpy(&lo, p, 4);
    lo ^= c;
    c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
        table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^ table[0][p[7]];
  }
  while (n--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

struct log {
  int fd;
  long tail;
  long next;
};

static void lock(int fd, short type) {
  struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
  if (fcntl(fd, F_OFD_SETLKW, &fl)) die("fcntl");
}

/* Lock, find the end (fstat), write header and payload with one pwrite, unlock. */
static void append(struct log *log, const unsigned char *data, long size, unsigned char *buf) {
  lock(log->fd, F_WRLCK);
  struct stat st;
  if (fstat(log->fd, &st)) die("fstat");
  log->tail = st.st_size;
  uint32_t magic = 0x31474f4c, length = size, payload_crc = crc32c(data, size);
  uint64_t seq = log->next++;
  memcpy(buf, &magic, 4);
  memcpy(buf + 4, &length, 4);
  memcpy(buf + 8, &seq, 8);
  memcpy(buf + 16, &payload_crc, 4);
  uint32_t header_crc = crc32c(buf, 20);
  memcpy(buf + 20, &header_crc, 4);
  memcpy(buf + 24, data, size);
  if (pwrite(log->fd, buf, 24 + size, log->tail) != 24 + size) die("pwrite");
  log->tail += 24 + size;
  lock(log->fd, F_UNLCK);
}

/* Reads the next whole record at *offset, waiting on inotify fd `in` when there is none. */
static void next_record(int fd, int in, long *offset, unsigned char *buf) {
  char events[4096];
  for (;;) {
    struct stat st;
    if (fstat(fd, &st)) die("fstat");
    if (st.st_size >= *offset + 24 && pread(fd, buf, 24, *offset) == 24) {
      uint32_t length, header_crc;
      memcpy(&length, buf + 4, 4);
      memcpy(&header_crc, buf + 20, 4);
      if (header_crc != crc32c(buf, 20)) die("corrupted header");
      if (st.st_size >= *offset + 24 + length) {
        if (pread(fd, buf + 24, length, *offset + 24) != length) die("pread");
        uint32_t payload_crc;
        memcpy(&payload_crc, buf + 16, 4);
        if (payload_crc != crc32c(buf + 24, length)) die("corrupted payload");
        *offset += 24 + length;
        return;
      }
    }
    if (read(in, events, sizeof events) < 0) die("read inotify");
  }
}

static int open_log(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) die("open");
  return fd;
}

static int watch(const char *path) {
  int in = inotify_init1(IN_CLOEXEC);
  if (in < 0 || inotify_add_watch(in, path, IN_MODIFY) < 0) die("inotify");
  return in;
}

int main(int argc, char **argv) {
  const char *mode = argv[1];
  long size = atol(argv[2]), count = atol(argv[3]);
  crc_init();
  unsigned char *message = calloc(1, size), *buf = malloc(24 + size);
  char a[64], b[64];
  snprintf(a, sizeof a, "/tmp/deno-ipc-bench-%d.a", getpid());
  snprintf(b, sizeof b, "/tmp/deno-ipc-bench-%d.b", getpid());
  int fa = open_log(a), fb = open_log(b);
  int ina = watch(a), inb = watch(b);
  if (strcmp(mode, "pingpong") == 0) {
    if (bench_fork() == 0) {
      struct log back = {fb, 0, 0};
      long offset = 0;
      for (long i = 0; i < count; i++) {
        next_record(fa, ina, &offset, buf);
        append(&back, buf + 24, size, malloc(24 + size));
      }
      _exit(0);
    }
    struct log there = {fa, 0, 0};
    long offset = 0;
    double *samples = malloc(sizeof(double) * count), started = now_us();
    for (long i = 0; i < count; i++) {
      double t = now_us();
      append(&there, message, size, buf);
      next_record(fb, inb, &offset, buf);
      samples[i] = now_us() - t;
    }
    double seconds = (now_us() - started) / 1e6;
    wait(NULL);
    unlink(a);
    unlink(b);
    print_result(count, (double)count * size, seconds, samples, count);
    return 0;
  }
  if (bench_fork() == 0) {
    struct log log = {fa, 0, 0};
    for (long i = 0; i < count; i++) append(&log, message, size, buf);
    _exit(0);
  }
  long offset = 0;
  next_record(fa, ina, &offset, buf);
  double started = now_us();
  for (long i = 1; i < count; i++) next_record(fa, ina, &offset, buf);
  double seconds = (now_us() - started) / 1e6;
  wait(NULL);
  unlink(a);
  unlink(b);
  print_result(count - 1, (double)(count - 1) * size, seconds, NULL, 0);
  return 0;
}

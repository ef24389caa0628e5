/* Shared-memory write bandwidth: a child process memcpy()s CHUNK-byte blocks into a
 * POSIX shared memory region of REGION bytes, round after round, until TOTAL bytes are
 * written; the parent then checks the region holds the pattern.
 * Usage: shm_write TOTAL_BYTES CHUNK_BYTES REGION_BYTES */
#include "common.h"
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long total = atol(argv[1]), chunk = atol(argv[2]), region = atol(argv[3]);
  char name[64];
  snprintf(name, sizeof name, "/deno-ipc-bench-shm-%d", getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) die("shm_open");
  shm_unlink(name);
  if (ftruncate(fd, region) || posix_fallocate(fd, 0, region)) die("ftruncate");
  unsigned char *shared = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  double *elapsed = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED || elapsed == MAP_FAILED) die("mmap");

  pid_t child = bench_fork();
  if (child == 0) {
    unsigned char *source = malloc(chunk);
    for (long i = 0; i < chunk; i++) source[i] = (unsigned char)(i * 7 + 1);
    long offset = 0;
    double start = now_us();
    for (long written = 0; written < total; written += chunk) {
      memcpy(shared + offset, source, chunk);
      offset += chunk;
      if (offset + chunk > region) offset = 0;
    }
    *elapsed = (now_us() - start) / 1e6;
    _exit(0);
  }
  waitpid(child, NULL, 0);
  for (long i = 0; i < chunk; i++) {
    if (shared[i] != (unsigned char)(i * 7 + 1)) {
      fprintf(stderr, "shm_write: region does not hold the pattern at %ld\n", i);
      return 1;
    }
  }
  print_result(total / chunk, (double)total, *elapsed, NULL, 0);
  return 0;
}

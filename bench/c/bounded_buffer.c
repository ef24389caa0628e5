/* The textbook bounded buffer of lib/bounded_buffer.ts, same algorithm, in C: BUFFER_SIZE
 * slots of one item size in POSIX shared memory, `in` and `out` on separate cache lines,
 * full when (in + 1) % BUFFER_SIZE == out (one slot stays empty), one producer and one
 * consumer, and the same waiting policy as ring.c (spin about 3 us, 4 x sched_yield, then
 * sleep on a futex flag that the other side clears and wakes). The consumer copies each
 * item out, as the Deno side's receive() does.
 * Usage: bounded_buffer ITEM_BYTES COUNT BUFFER_SIZE */
#include "common.h"
#include "wait.h"
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
  _Alignas(64) atomic_uint in;
  _Alignas(64) atomic_uint out;
  _Alignas(64) atomic_int producer_waiting;
  _Alignas(64) atomic_int consumer_waiting;
  _Alignas(64) unsigned char slots[];
} buffer_t;

static uint32_t item_size, buffer_size;

static int try_send(buffer_t *buffer, const unsigned char *item) {
  uint32_t in = atomic_load_explicit(&buffer->in, memory_order_relaxed);
  uint32_t next = (in + 1) % buffer_size;
  if (next == atomic_load_explicit(&buffer->out, memory_order_acquire)) return 0;
  memcpy(buffer->slots + (size_t)in * item_size, item, item_size);
  atomic_store_explicit(&buffer->in, next, memory_order_seq_cst);
  futex_wake(&buffer->consumer_waiting);
  return 1;
}

static int try_receive(buffer_t *buffer, unsigned char *item) {
  uint32_t out = atomic_load_explicit(&buffer->out, memory_order_relaxed);
  if (atomic_load_explicit(&buffer->in, memory_order_acquire) == out) return 0;
  memcpy(item, buffer->slots + (size_t)out * item_size, item_size);
  atomic_store_explicit(&buffer->out, (out + 1) % buffer_size, memory_order_seq_cst);
  futex_wake(&buffer->producer_waiting);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  item_size = atoi(argv[1]);
  long count = atol(argv[2]);
  buffer_size = atoi(argv[3]);
  char name[64];
  snprintf(name, sizeof name, "/deno-ipc-bench-buffer-%d", getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) die("shm_open");
  shm_unlink(name);
  size_t bytes = sizeof(buffer_t) + (size_t)buffer_size * item_size;
  if (ftruncate(fd, bytes) || posix_fallocate(fd, 0, bytes)) die("ftruncate");
  buffer_t *buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (buffer == MAP_FAILED) die("mmap");
  close(fd);
  unsigned char *item = calloc(1, item_size), *received = malloc(item_size);

  /* Untimed items first, as bounded_buffer.ts does. */
  long warmup = count / 10 > 1 ? count / 10 : 1;
  pid_t child = bench_fork();
  if (child == 0) {
    for (long i = 0; i < warmup + count; i++) {
      item[0] = (unsigned char)i;
      WAIT_UNTIL(try_send(buffer, item), &buffer->producer_waiting);
    }
    _exit(0);
  }
  for (long i = 0; i < warmup; i++)
    WAIT_UNTIL(try_receive(buffer, received), &buffer->consumer_waiting);
  double started = now_us();
  for (long i = warmup; i < warmup + count; i++) {
    WAIT_UNTIL(try_receive(buffer, received), &buffer->consumer_waiting);
    if (received[0] != (unsigned char)i) {
      fprintf(stderr, "bounded_buffer: item %ld is wrong\n", i);
      return 1;
    }
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  print_result(count, (double)count * item_size, seconds, NULL, 0);
  return 0;
}

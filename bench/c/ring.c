/* The message ring of lib/message_ring.ts, same algorithm, in C: a power-of-two byte ring
 * in POSIX shared memory, records [u32 length][u32 unused][payload padded to 8], head and
 * tail on separate cache lines, single producer and single consumer, and the same waiting
 * policy (spin about 3 us, 4 x sched_yield, then sleep on a futex flag that the other
 * side clears and wakes after publishing).
 * Usage: ring throughput MESSAGE_BYTES COUNT CAPACITY
 *        ring pingpong MESSAGE_BYTES COUNT CAPACITY */
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
  _Alignas(64) atomic_uint head;
  _Alignas(64) atomic_uint tail;
  _Alignas(64) atomic_int send_waiting;
  _Alignas(64) atomic_int receive_waiting;
  _Alignas(64) unsigned char data[];
} ring_t;

static uint32_t capacity, mask;

static uint32_t record_size(uint32_t length) { return (8 + length + 7) & ~7u; }

static int try_send(ring_t *ring, const unsigned char *message, uint32_t length) {
  uint32_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
  uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
  uint32_t need = record_size(length);
  if (capacity - (head - tail) < need) return 0;
  uint32_t at = head & mask;
  memcpy(ring->data + at, &length, 4);
  uint32_t start = (at + 8) & mask, first = length < capacity - start ? length : capacity - start;
  memcpy(ring->data + start, message, first);
  if (first < length) memcpy(ring->data, message + first, length - first);
  atomic_store_explicit(&ring->head, head + need, memory_order_seq_cst);
  futex_wake(&ring->receive_waiting);
  return 1;
}

static int try_receive(ring_t *ring, unsigned char *out, uint32_t *length) {
  uint32_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
  uint32_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
  if (head == tail) return 0;
  uint32_t at = tail & mask;
  memcpy(length, ring->data + at, 4);
  uint32_t start = (at + 8) & mask, first = *length < capacity - start ? *length : capacity - start;
  memcpy(out, ring->data + start, first);
  if (first < *length) memcpy(out + first, ring->data, *length - first);
  atomic_store_explicit(&ring->tail, tail + record_size(*length), memory_order_seq_cst);
  futex_wake(&ring->send_waiting);
  return 1;
}

static ring_t *map_ring(const char *name) {
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) die("shm_open");
  shm_unlink(name);
  size_t size = sizeof(ring_t) + capacity;
  if (ftruncate(fd, size) || posix_fallocate(fd, 0, size)) die("ftruncate");
  ring_t *ring = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (ring == MAP_FAILED) die("mmap");
  close(fd);
  return ring;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  int pingpong = strcmp(argv[1], "pingpong") == 0;
  uint32_t size = atoi(argv[2]);
  long count = atol(argv[3]);
  capacity = atoi(argv[4]);
  mask = capacity - 1;
  char name[64];
  snprintf(name, sizeof name, "/deno-ipc-bench-ring-%d-a", getpid());
  ring_t *forward = map_ring(name);
  snprintf(name, sizeof name, "/deno-ipc-bench-ring-%d-b", getpid());
  ring_t *backward = map_ring(name);
  unsigned char *message = calloc(1, size), *received = malloc(size);
  uint32_t length;

  /* Untimed messages first, as ring.ts and mailbox.ts do. */
  long warmup = count / 10 > 1 ? count / 10 : 1;
  pid_t child = bench_fork();
  if (child == 0) {
    if (pingpong) {
      for (long i = 0; i < warmup + count; i++) {
        WAIT_UNTIL(try_receive(forward, received, &length), &forward->receive_waiting);
        WAIT_UNTIL(try_send(backward, received, length), &backward->send_waiting);
      }
    } else {
      for (long i = 0; i < warmup + count; i++) {
        message[0] = (unsigned char)i;
        WAIT_UNTIL(try_send(forward, message, size), &forward->send_waiting);
      }
    }
    _exit(0);
  }
  if (pingpong) {
    for (long i = 0; i < warmup; i++) {
      WAIT_UNTIL(try_send(forward, message, size), &forward->send_waiting);
      WAIT_UNTIL(try_receive(backward, received, &length), &backward->receive_waiting);
    }
    double *samples = malloc(sizeof(double) * count), started = now_us();
    for (long i = 0; i < count; i++) {
      double t = now_us();
      WAIT_UNTIL(try_send(forward, message, size), &forward->send_waiting);
      WAIT_UNTIL(try_receive(backward, received, &length), &backward->receive_waiting);
      samples[i] = now_us() - t;
    }
    double seconds = (now_us() - started) / 1e6;
    waitpid(child, NULL, 0);
    print_result(count, (double)count * size, seconds, samples, count);
  } else {
    for (long i = 0; i < warmup; i++)
      WAIT_UNTIL(try_receive(forward, received, &length), &forward->receive_waiting);
    double started = now_us();
    for (long i = warmup; i < warmup + count; i++) {
      WAIT_UNTIL(try_receive(forward, received, &length), &forward->receive_waiting);
      if (received[0] != (unsigned char)i || length != size) {
        fprintf(stderr, "ring: message %ld is wrong\n", i);
        return 1;
      }
    }
    double seconds = (now_us() - started) / 1e6;
    waitpid(child, NULL, 0);
    print_result(count, (double)count * size, seconds, NULL, 0);
  }
  return 0;
}

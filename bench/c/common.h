/* Shared by the C baselines: timing and the one-line JSON result the harness reads. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Prints {"messages":..,"bytes":..,"seconds":..,"p50_us":..,"p99_us":..}; samples may be NULL. */
static void print_result(long messages, double bytes, double seconds, double *samples, long n) {
  if (samples && n > 0) {
    qsort(samples, n, sizeof(double), compare_double);
    printf("{\"messages\":%ld,\"bytes\":%.0f,\"seconds\":%.6f,\"p50_us\":%.3f,\"p99_us\":%.3f}\n",
           messages, bytes, seconds, samples[n / 2], samples[(long)(n * 0.99)]);
  } else {
    printf("{\"messages\":%ld,\"bytes\":%.0f,\"seconds\":%.6f,\"p50_us\":null,\"p99_us\":null}\n",
           messages, bytes, seconds);
  }
}

__attribute__((unused)) static void die(const char *what) {
  perror(what);
  exit(1);
}

/* The harness's --pin=SELF/PEER: the measuring process was started under taskset -c SELF, and
 * its peer (the child) moves to the CPUs listed in DENO_IPC_BENCH_PEER_CPUS ("1", "0,2",
 * "2-3"), as bench/_common.ts does for Deno peers. Unset: the child keeps the parent's CPUs. */
static void place_peer(void) {
  const char *list = getenv("DENO_IPC_BENCH_PEER_CPUS");
  if (!list || !*list) return;
  unsigned long mask[16] = {0};
  const int bits = (int)(8 * sizeof mask), word = (int)(8 * sizeof mask[0]);
  for (const char *p = list; *p;) {
    char *end;
    long first = strtol(p, &end, 10), last = first;
    if (end == p) break;
    if (*end == '-') last = strtol(end + 1, &end, 10);
    for (long cpu = first; cpu <= last && cpu >= 0 && cpu < bits; cpu++)
      mask[cpu / word] |= 1UL << (cpu % word);
    p = *end == ',' ? end + 1 : end;
  }
  if (syscall(SYS_sched_setaffinity, 0, sizeof mask, mask) != 0) {
    perror("sched_setaffinity");
    exit(1);
  }
}

/* fork(2), with the child placed as the harness asked (see place_peer). */
__attribute__((unused)) static pid_t bench_fork(void) {
  pid_t child = fork();
  if (child == 0) place_peer();
  return child;
}

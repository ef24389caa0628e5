/* Named-semaphore ping-pong between two processes: the parent posts "ping" and waits
 * for "pong"; the child waits for "ping" and posts "pong".
 * Usage: sem_pingpong ROUNDS [spin]
 * With "spin", every wait uses deno-ipc's policy (lib/_wait.ts): sem_trywait for about
 * 3 µs (what 200 attempts through Deno FFI take), then 4 sem_trywait each after
 * sched_yield, then sem_wait. Without it, plain sem_wait. */
#include "common.h"
#include <fcntl.h>
#include <semaphore.h>
#include <sys/wait.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

static int spin;

static void wait_for(sem_t *sem) {
  if (spin) {
    double start = now_us();
    do {
      if (sem_trywait(sem) == 0) return;
    } while (now_us() - start < 3.0);
    for (int i = 0; i < 4; i++) {
      sched_yield();
      if (sem_trywait(sem) == 0) return;
    }
  }
  sem_wait(sem);
}

int main(int argc, char **argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 20000, warmup = rounds / 10;
  spin = argc > 2 && strcmp(argv[2], "spin") == 0;
  char ping_name[64], pong_name[64];
  snprintf(ping_name, sizeof ping_name, "/deno-ipc-bench-ping-%d", getpid());
  snprintf(pong_name, sizeof pong_name, "/deno-ipc-bench-pong-%d", getpid());
  sem_t *ping = sem_open(ping_name, O_CREAT | O_EXCL, 0600, 0);
  sem_t *pong = sem_open(pong_name, O_CREAT | O_EXCL, 0600, 0);
  if (ping == SEM_FAILED || pong == SEM_FAILED) die("sem_open");
  sem_unlink(ping_name); /* both processes hold them open; nothing to leak */
  sem_unlink(pong_name);

  pid_t child = bench_fork();
  if (child < 0) die("fork");
  if (child == 0) {
    for (long i = 0; i < warmup + rounds; i++) {
      wait_for(ping);
      sem_post(pong);
    }
    _exit(0);
  }
  double *samples = malloc(sizeof(double) * rounds);
  for (long i = 0; i < warmup; i++) {
    sem_post(ping);
    wait_for(pong);
  }
  double start = now_us();
  for (long i = 0; i < rounds; i++) {
    double t = now_us();
    sem_post(ping);
    wait_for(pong);
    samples[i] = now_us() - t;
  }
  double seconds = (now_us() - start) / 1e6;
  waitpid(child, NULL, 0);
  print_result(rounds, 0, seconds, samples, rounds);
  return 0;
}

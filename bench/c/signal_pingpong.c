/* Signal round trip between two processes: the parent sends SIGUSR2 to the child, the
 * child answers with SIGUSR2; both wait with sigwait() on the blocked signal.
 * Usage: signal_pingpong ROUNDS */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 2000, warmup = rounds / 10;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, NULL);
  pid_t parent = getpid(), child = bench_fork();
  int received;
  if (child == 0) {
    for (long i = 0; i < warmup + rounds; i++) {
      sigwait(&set, &received);
      kill(parent, SIGUSR2);
    }
    _exit(0);
  }
  double *samples = malloc(sizeof(double) * rounds);
  for (long i = 0; i < warmup; i++) {
    kill(child, SIGUSR2);
    sigwait(&set, &received);
  }
  double started = now_us();
  for (long i = 0; i < rounds; i++) {
    double t = now_us();
    kill(child, SIGUSR2);
    sigwait(&set, &received);
    samples[i] = now_us() - t;
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  print_result(rounds, 0, seconds, samples, rounds);
  return 0;
}

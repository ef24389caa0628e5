/* The waiting policy of lib/message_ring.ts and lib/bounded_buffer.ts, shared by the C
 * baselines of both (lib/_wait.ts): spin about 3 us with a sched_yield every 16 attempts,
 * yield 4 times, then announce on a futex flag,
 * re-check, and sleep on it; the other side clears the flag and wakes after publishing.
 * Include after common.h (now_us). */
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void futex_sleep(atomic_int *flag) {
  struct timespec timeout = {0, 100 * 1000 * 1000};
  syscall(SYS_futex, flag, FUTEX_WAIT, 1, &timeout, NULL, 0);
}

static void futex_wake(atomic_int *flag) {
  if (atomic_load(flag) != 0 && atomic_exchange(flag, 0) != 0)
    syscall(SYS_futex, flag, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

#define WAIT_UNTIL(attempt, flag)                                   \
  do {                                                              \
    if (attempt) break;                                             \
    double started = now_us();                                      \
    int done = 0;                                                   \
    for (long spins = 1; !done && now_us() - started < 3.0; spins++) { \
      if (spins % 16 == 0) sched_yield();                           \
      done = (attempt);                                             \
    }                                                               \
    for (int i = 0; !done && i < 4; i++) {                          \
      sched_yield();                                                \
      done = (attempt);                                             \
    }                                                               \
    while (!done) {                                                 \
      atomic_store(flag, 1);                                        \
      if ((done = (attempt))) break;                                \
      futex_sleep(flag);                                            \
      done = (attempt);                                             \
    }                                                               \
  } while (0)

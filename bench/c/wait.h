/* The waiting policy of lib/message_ring.ts and lib/bounded_buffer.ts, shared by the C
 * baselines of both (lib/_wait.ts): spin about 3 us, yielding about every microsecond of
 * it (Deno yields every 16 attempts, 0.25 to 1 us there; 16 attempts of C take about 0.1
 * us, and a yield every 0.1 us made C's ring spin mostly in syscalls), yield 4 times, then
 * announce on a futex flag,
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
    double started = now_us(), yielded = started, now;              \
    int done = 0;                                                   \
    while (!done && (now = now_us()) - started < 3.0) {             \
      if (now - yielded >= 1.0) {                                   \
        sched_yield();                                              \
        yielded = now;                                              \
      }                                                             \
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

/* Message queues between two processes.
 * Usage: mq sysv|posix throughput MESSAGE_BYTES COUNT   the child sends, the parent receives
 *        mq sysv|posix pingpong MESSAGE_BYTES COUNT     one message each way per round
 * System V: one queue, replies as type 2. POSIX: two queues (10 x 8192, the defaults). */
#include "common.h"
#include <fcntl.h>
#include <mqueue.h>
#include <string.h>
#include <sys/msg.h>
#include <sys/wait.h>
#include <unistd.h>

struct message { long type; unsigned char data[8192]; };

int main(int argc, char **argv) {
  int posix = strcmp(argv[1], "posix") == 0, pingpong = strcmp(argv[2], "pingpong") == 0;
  long size = atol(argv[3]), count = atol(argv[4]);
  static struct message message;
  int queue = -1;
  mqd_t there = -1, back = -1;
  char name_there[64], name_back[64];
  if (posix) {
    snprintf(name_there, sizeof name_there, "/deno-ipc-bench-mq-%d-a", getpid());
    snprintf(name_back, sizeof name_back, "/deno-ipc-bench-mq-%d-b", getpid());
    struct mq_attr attr = {.mq_maxmsg = 10, .mq_msgsize = 8192};
    there = mq_open(name_there, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
    back = mq_open(name_back, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
    if (there < 0 || back < 0) die("mq_open");
    mq_unlink(name_there);
    mq_unlink(name_back);
  } else if ((queue = msgget(IPC_PRIVATE, IPC_CREAT | 0600)) < 0) {
    die("msgget");
  }
  pid_t child = bench_fork();
  if (child == 0) {
    for (long i = 0; i < count; i++) {
      if (pingpong) {
        if (posix) {
          mq_receive(there, (char *)message.data, 8192, NULL);
          mq_send(back, (char *)message.data, size, 0);
        } else {
          msgrcv(queue, &message, size, 1, 0);
          message.type = 2;
          msgsnd(queue, &message, size, 0);
        }
      } else if (posix) {
        mq_send(there, (char *)message.data, size, 0);
      } else {
        message.type = 1;
        msgsnd(queue, &message, size, 0);
      }
    }
    _exit(0);
  }
  double *samples = pingpong ? malloc(sizeof(double) * count) : NULL, started = 0;
  for (long i = 0; i < count; i++) {
    double t = now_us();
    if (pingpong) {
      if (posix) {
        mq_send(there, (char *)message.data, size, 0);
        mq_receive(back, (char *)message.data, 8192, NULL);
      } else {
        message.type = 1;
        msgsnd(queue, &message, size, 0);
        msgrcv(queue, &message, size, 2, 0);
      }
      samples[i] = now_us() - t;
    } else if (posix) {
      mq_receive(there, (char *)message.data, 8192, NULL);
    } else {
      msgrcv(queue, &message, size, 1, 0);
    }
    if (i == 0) started = now_us();
  }
  double seconds = (now_us() - started) / 1e6;
  waitpid(child, NULL, 0);
  if (!posix) msgctl(queue, IPC_RMID, NULL);
  print_result(count - (pingpong ? 0 : 1), (double)size * count, seconds, samples, count);
  return 0;
}

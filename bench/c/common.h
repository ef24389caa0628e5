/* Shared by the C baselines: timing and the one-line JSON result the harness reads. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

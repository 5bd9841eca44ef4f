/*
 * SMP correctness check for tsvisor's end-to-end tests (test/e2e/smp.test.ts).
 *
 * THREADS threads each make ITERS atomic increments (__atomic_fetch_add: an AMOADD
 * on RV64A) of one shared counter, then ITERS increments of a plain counter under a
 * pthread mutex (LR/SC in glibc's lock, futex when contended). Prints
 *   atomic=N mutex=N
 * which must both be THREADS * ITERS; exits 1 when they are not.
 *
 * Built by the test with: riscv64-linux-gnu-gcc -O2 -static -pthread
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define ITERS 1000000L

static long atomic_counter;
static long mutex_counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* all threads start together, so that they really contend */
static pthread_barrier_t start;

static void *worker(void *arg) {
  (void)arg;
  pthread_barrier_wait(&start);
  for (long i = 0; i < ITERS; i++) __atomic_fetch_add(&atomic_counter, 1, __ATOMIC_RELAXED);
  for (long i = 0; i < ITERS; i++) {
    pthread_mutex_lock(&lock);
    /* volatile: one load and one store per iteration, as a real critical section */
    *(volatile long *)&mutex_counter = *(volatile long *)&mutex_counter + 1;
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

int main(void) {
  pthread_t t[THREADS];
  pthread_barrier_init(&start, NULL, THREADS);
  for (int i = 0; i < THREADS; i++) {
    if (pthread_create(&t[i], NULL, worker, NULL) != 0) { perror("pthread_create"); return 2; }
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  long a = __atomic_load_n(&atomic_counter, __ATOMIC_SEQ_CST);
  printf("atomic=%ld mutex=%ld\n", a, mutex_counter);
  return a == THREADS * ITERS && mutex_counter == THREADS * ITERS ? 0 : 1;
}

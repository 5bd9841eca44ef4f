/*
 * A guest that keeps changing its own code, for the JIT's stress test:
 *
 *   codechurn smc COUNT    rewrites one function (li a0, K; ret) in place COUNT times,
 *                          K new each time, and calls it after each rewrite
 *   codechurn map COUNT    COUNT times: maps a fresh page, writes a loop function into it
 *                          (its result depends on the iteration), makes it executable,
 *                          runs it often enough to be translated, unmaps it
 *   codechurn threads COUNT as smc, but every thread of 2 takes turns rewriting and
 *                          calling one shared function (another hart's stores)
 *
 * Prints "@@ MODE ok COUNT" when every call returned what the code it ran computes, or
 * "@@ MODE bad ITERATION got X want Y" at the first wrong result (exit status 1).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef long (*fn_t)(long);

static uint32_t addi(int rd, int rs1, int imm) { return ((uint32_t)(imm & 0xfff) << 20) | (rs1 << 15) | (rd << 7) | 0x13; }
static uint32_t add(int rd, int rs1, int rs2) { return (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33; }
static uint32_t bne(int rs1, int rs2, int imm) {
  uint32_t u = (uint32_t)imm;
  return (((u >> 12) & 1) << 31) | (((u >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12) |
         (((u >> 1) & 0xf) << 8) | (((u >> 11) & 1) << 7) | 0x63;
}
#define RET 0x00008067u
#define A0 10
#define A1 11

static void sync_icache(void *p, size_t n) { __builtin___clear_cache((char *)p, (char *)p + n); }

/* li a0, k; ret */
static void write_const(uint32_t *code, int k) {
  code[0] = addi(A0, 0, k);
  code[1] = RET;
  sync_icache(code, 8);
}

static int smc(long count) {
  uint32_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (code == MAP_FAILED) { perror("mmap"); return 1; }
  for (long i = 0; i < count; i++) {
    int k = (int)(i % 2000) - 1000;
    write_const(code, k);
    long got = ((fn_t)code)(0);
    if (got != k) { printf("@@ smc bad %ld got %ld want %d\n", i, got, k); return 1; }
  }
  printf("@@ smc ok %ld\n", count);
  return 0;
}

static int map(long count) {
  for (long i = 0; i < count; i++) {
    uint32_t *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) { perror("mmap"); return 1; }
    int k = (int)(i % 1000);
    int at = (int)((i * 40) % 4000) / 4; /* the function at another offset each time */
    uint32_t *f = code + at;
    /* a1 = k; loop: a1 += a0; a0 -= 1; bne a0, x0, loop; a0 = a1; ret */
    f[0] = addi(A1, 0, k);
    f[1] = add(A1, A1, A0);
    f[2] = addi(A0, A0, -1);
    f[3] = bne(A0, 0, -8);
    f[4] = addi(A0, A1, 0);
    f[5] = RET;
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC)) { perror("mprotect"); return 1; }
    sync_icache(f, 24);
    for (int r = 0; r < 3; r++) {
      long n = 100 + r;
      long got = ((fn_t)f)(n);
      long want = k + n * (n + 1) / 2;
      if (got != want) { printf("@@ map bad %ld got %ld want %ld\n", i, got, want); return 1; }
    }
    if (munmap(code, 4096)) { perror("munmap"); return 1; }
  }
  printf("@@ map ok %ld\n", count);
  return 0;
}

static uint32_t *shared;
static long shared_count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int bad;

static void *churn(void *arg) {
  long id = (long)arg;
  for (long i = id; i < shared_count && !bad; i += 2) {
    pthread_mutex_lock(&lock);
    int k = (int)((i * 7) % 2000) - 1000;
    write_const(shared, k);
    long got = ((fn_t)shared)(0);
    pthread_mutex_unlock(&lock);
    if (got != k) { printf("@@ threads bad %ld got %ld want %d\n", i, got, k); bad = 1; }
  }
  return NULL;
}

static int threads(long count) {
  shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) { perror("mmap"); return 1; }
  shared_count = count;
  pthread_t t[2];
  for (long i = 0; i < 2; i++) pthread_create(&t[i], NULL, churn, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  if (bad) return 1;
  printf("@@ threads ok %ld\n", count);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: codechurn smc|map|threads COUNT\n"); return 2; }
  long count = atol(argv[2]);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(argv[1], "smc")) return smc(count);
  if (!strcmp(argv[1], "map")) return map(count);
  if (!strcmp(argv[1], "threads")) return threads(count);
  fprintf(stderr, "codechurn: unknown mode %s\n", argv[1]);
  return 2;
}

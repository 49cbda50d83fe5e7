/* Shared by the raw C baselines (poll.c, epoll.c, select.c).
 *
 * Descriptors: AF_UNIX SOCK_STREAM socket pairs, both ends registered, so N
 * registered descriptors cost N (not 2N) open files; the Lua and Python
 * drivers make the very same kind (see bench/README.md).
 *
 * Time: process CPU time (user + system), robust against preemption on a
 * shared machine. Each figure is the median of BENCH_RUNS batches of about
 * BENCH_BATCH_MS milliseconds each.
 *
 * Output: one line per figure, "R<TAB>workload<TAB>impl<TAB>param<TAB>value".
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int runs = 5;
static double batch_ns = 40e6;

static void config(void) {
    const char *r = getenv("BENCH_RUNS"), *b = getenv("BENCH_BATCH_MS");
    if (r && atoi(r) > 0) runs = atoi(r);
    if (b && atof(b) > 0) batch_ns = atof(b) * 1e6;
}

static double cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench C: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A set of n registered descriptors: ends[0..n-1] = a1, b1, a2, b2, ...
 * partner[fd] is the other end of fd's pair (every end of every pair). */
typedef struct {
    int n, npairs, maxfd;
    int *ends;
    int *partner;
} fdset_t;

static void set_open(fdset_t *s, int n) {
    s->n = n;
    s->npairs = (n + 1) / 2;
    s->ends = malloc(sizeof(int) * 2 * s->npairs);
    s->maxfd = 0;
    for (int i = 0; i < s->npairs; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) die("socketpair");
        s->ends[2 * i] = sv[0];
        s->ends[2 * i + 1] = sv[1];
        if (sv[1] > s->maxfd) s->maxfd = sv[1];
        if (sv[0] > s->maxfd) s->maxfd = sv[0];
    }
    s->partner = malloc(sizeof(int) * (s->maxfd + 1));
    for (int i = 0; i < s->npairs; i++) {
        s->partner[s->ends[2 * i]] = s->ends[2 * i + 1];
        s->partner[s->ends[2 * i + 1]] = s->ends[2 * i];
    }
}

static void set_close(fdset_t *s) {
    for (int i = 0; i < 2 * s->npairs; i++) close(s->ends[i]);
    free(s->ends);
    free(s->partner);
}

static void put_byte(int fd) {
    if (write(fd, "x", 1) != 1) die("write");
}

static void take_byte(int fd) {
    char c;
    if (read(fd, &c, 1) != 1) die("read");
}

/* Makes every registered end readable (one byte queued in each). */
static void set_fill(fdset_t *s) {
    for (int i = 0; i < s->n; i++) put_byte(s->partner[s->ends[i]]);
}

/* Runs about iters units of work; returns how many it really did. */
typedef long (*op_fn)(void *ctx, long iters);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median cost in ns of one unit of op. */
static double measure(op_fn op, void *ctx) {
    long iters = 1;
    op(ctx, 1); /* warm-up: first calls may pay for lazy set-up */
    for (;;) {
        double t0 = cpu_ns();
        long done = op(ctx, iters);
        double dt = cpu_ns() - t0;
        if (dt >= batch_ns / 20) {
            iters = (long)(done * batch_ns / dt);
            if (iters < 1) iters = 1;
            break;
        }
        iters *= 4;
    }
    double *v = malloc(sizeof(double) * runs);
    for (int r = 0; r < runs; r++) {
        double t0 = cpu_ns();
        long done = op(ctx, iters);
        v[r] = (cpu_ns() - t0) / done;
    }
    qsort(v, runs, sizeof(double), cmp_double);
    double m = v[runs / 2];
    free(v);
    return m;
}

static void emit(const char *w, const char *impl, const char *param, double v) {
    printf("R\t%s\t%s\t%s\t%.1f\n", w, impl, param, v);
    fflush(stdout);
}

__attribute__((unused)) static void emit_na(const char *w, const char *impl, const char *param, const char *why) {
    printf("R\t%s\t%s\t%s\tn/a (%s)\n", w, impl, param, why);
    fflush(stdout);
}

static const int W1_N[] = {1, 10, 100, 1000, 10000};
static const int W2_N[] = {100, 1000};
static const int W3_K[] = {1, 64, 512};

#endif

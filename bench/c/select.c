/* Raw C baseline: select(2). W1 idle set, W2 all ready, W3 ping-pong.
 * select(2) cannot take descriptors >= FD_SETSIZE (1024): those figures are
 * printed as n/a. */
#include <sys/select.h>

#include "common.h"

typedef struct {
    fdset_t *s;
    fd_set master;
    int *out;
    int timeout; /* 0: poll; -1: forever */
} ctx_t;

static void build(ctx_t *c, fdset_t *s, int n) {
    c->s = s;
    FD_ZERO(&c->master);
    for (int i = 0; i < n; i++) FD_SET(s->ends[i], &c->master);
    c->out = malloc(sizeof(int) * (n ? n : 1));
}

/* One select(2) per unit: copy the master set, wait, collect the ready fds
 * (in registration order). */
static long op_wait(void *p, long iters) {
    ctx_t *c = p;
    int n = c->s->n, nfds = c->s->maxfd + 1;
    for (long it = 0; it < iters; it++) {
        fd_set rs = c->master;
        struct timeval tv = {0, 0};
        int r = select(nfds, &rs, NULL, NULL, &tv);
        if (r < 0) die("select");
        for (int i = 0, k = 0; k < r && i < n; i++)
            if (FD_ISSET(c->s->ends[i], &rs)) c->out[k++] = c->s->ends[i];
    }
    return iters;
}

static long op_ping(void *p, long iters) {
    ctx_t *c = p;
    int n = c->s->n, nfds = c->s->maxfd + 1;
    long done = 0;
    while (done < iters) {
        fd_set rs = c->master;
        int r = select(nfds, &rs, NULL, NULL, NULL);
        if (r < 0) die("select");
        for (int i = 0, k = 0; k < r && i < n; i++) {
            int fd = c->s->ends[i];
            if (FD_ISSET(fd, &rs)) {
                take_byte(fd);
                put_byte(c->s->partner[fd]);
                done++;
                k++;
            }
        }
    }
    return done;
}

int main(void) {
    config();
    char param[64];
    for (size_t k = 0; k < sizeof W1_N / sizeof W1_N[0]; k++) {
        int n = W1_N[k];
        fdset_t s;
        set_open(&s, n);
        ctx_t c;
        snprintf(param, sizeof param, "%d:idle", n);
        if (s.maxfd >= FD_SETSIZE) {
            emit_na("W1", "c.select", param, "FD_SETSIZE");
            snprintf(param, sizeof param, "%d:one", n);
            emit_na("W1", "c.select", param, "FD_SETSIZE");
            set_close(&s);
            continue;
        }
        build(&c, &s, n);
        emit("W1", "c.select", param, measure(op_wait, &c));
        put_byte(s.partner[s.ends[0]]);
        snprintf(param, sizeof param, "%d:one", n);
        emit("W1", "c.select", param, measure(op_wait, &c));
        take_byte(s.ends[0]);
        free(c.out);
        set_close(&s);
    }
    for (size_t k = 0; k < sizeof W2_N / sizeof W2_N[0]; k++) {
        int n = W2_N[k];
        fdset_t s;
        set_open(&s, n);
        snprintf(param, sizeof param, "%d", n);
        if (s.maxfd >= FD_SETSIZE) {
            emit_na("W2", "c.select", param, "FD_SETSIZE");
            set_close(&s);
            continue;
        }
        set_fill(&s);
        ctx_t c;
        build(&c, &s, n);
        emit("W2", "c.select", param, measure(op_wait, &c));
        free(c.out);
        set_close(&s);
    }
    for (size_t k = 0; k < sizeof W3_K / sizeof W3_K[0]; k++) {
        int kk = W3_K[k];
        fdset_t s;
        set_open(&s, 2 * kk);
        snprintf(param, sizeof param, "%d", kk);
        if (s.maxfd >= FD_SETSIZE) {
            emit_na("W3", "c.select", param, "FD_SETSIZE");
            set_close(&s);
            continue;
        }
        for (int i = 0; i < kk; i++) put_byte(s.ends[2 * i + 1]);
        ctx_t c;
        build(&c, &s, 2 * kk);
        double ns = measure(op_ping, &c);
        emit("W3", "c.select", param, 1e9 / (2 * ns));
        free(c.out);
        set_close(&s);
    }
    return 0;
}

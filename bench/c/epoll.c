/* Raw C baseline: epoll_wait(2). W1 idle set, W2 all ready, W3 ping-pong,
 * W4 registration (epoll_ctl ADD + DEL). */
#include <sys/epoll.h>

#include "common.h"

typedef struct {
    fdset_t *s;
    int ep, maxevents, timeout;
    struct epoll_event *evs;
    int *out;
} ctx_t;

static void build(ctx_t *c, fdset_t *s, int n) {
    c->s = s;
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    if (c->ep < 0) die("epoll_create1");
    c->maxevents = n ? n : 1;
    c->evs = malloc(sizeof(struct epoll_event) * c->maxevents);
    c->out = malloc(sizeof(int) * 2 * c->maxevents);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->ends[i]};
        if (epoll_ctl(c->ep, EPOLL_CTL_ADD, s->ends[i], &ev) < 0) die("epoll_ctl");
    }
}

static void unbuild(ctx_t *c) {
    close(c->ep);
    free(c->evs);
    free(c->out);
}

/* One epoll_wait(2) per unit, maxevents = set size, results copied out. */
static long op_wait(void *p, long iters) {
    ctx_t *c = p;
    for (long it = 0; it < iters; it++) {
        int r = epoll_wait(c->ep, c->evs, c->maxevents, c->timeout);
        if (r < 0) die("epoll_wait");
        for (int k = 0; k < r; k++) {
            c->out[2 * k] = c->evs[k].data.fd;
            c->out[2 * k + 1] = (int)c->evs[k].events;
        }
    }
    return iters;
}

static long op_ping(void *p, long iters) {
    ctx_t *c = p;
    long done = 0;
    while (done < iters) {
        int r = epoll_wait(c->ep, c->evs, c->maxevents, -1);
        if (r < 0) die("epoll_wait");
        for (int k = 0; k < r; k++) {
            int fd = c->evs[k].data.fd;
            take_byte(fd);
            put_byte(c->s->partner[fd]);
            done++;
        }
    }
    return done;
}

typedef struct {
    int ep, fd;
} reg_t;

static long op_churn(void *p, long iters) {
    reg_t *g = p;
    for (long it = 0; it < iters; it++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = g->fd};
        if (epoll_ctl(g->ep, EPOLL_CTL_ADD, g->fd, &ev) < 0) die("epoll_ctl ADD");
        if (epoll_ctl(g->ep, EPOLL_CTL_DEL, g->fd, &ev) < 0) die("epoll_ctl DEL");
    }
    return iters;
}

int main(void) {
    config();
    char param[64];
    for (size_t k = 0; k < sizeof W1_N / sizeof W1_N[0]; k++) {
        int n = W1_N[k];
        fdset_t s;
        set_open(&s, n);
        ctx_t c;
        build(&c, &s, n);
        c.timeout = 0;
        snprintf(param, sizeof param, "%d:idle", n);
        emit("W1", "c.epoll", param, measure(op_wait, &c));
        put_byte(s.partner[s.ends[0]]);
        snprintf(param, sizeof param, "%d:one", n);
        emit("W1", "c.epoll", param, measure(op_wait, &c));
        take_byte(s.ends[0]);
        unbuild(&c);
        set_close(&s);
    }
    for (size_t k = 0; k < sizeof W2_N / sizeof W2_N[0]; k++) {
        int n = W2_N[k];
        fdset_t s;
        set_open(&s, n);
        set_fill(&s);
        ctx_t c;
        build(&c, &s, n);
        c.timeout = 0;
        snprintf(param, sizeof param, "%d", n);
        emit("W2", "c.epoll", param, measure(op_wait, &c));
        unbuild(&c);
        set_close(&s);
    }
    for (size_t k = 0; k < sizeof W3_K / sizeof W3_K[0]; k++) {
        int kk = W3_K[k];
        fdset_t s;
        set_open(&s, 2 * kk);
        for (int i = 0; i < kk; i++) put_byte(s.ends[2 * i + 1]);
        ctx_t c;
        build(&c, &s, 2 * kk);
        snprintf(param, sizeof param, "%d", kk);
        double ns = measure(op_ping, &c);
        emit("W3", "c.epoll", param, 1e9 / (2 * ns));
        unbuild(&c);
        set_close(&s);
    }
    int others[] = {0, 1000};
    for (int k = 0; k < 2; k++) {
        fdset_t s;
        set_open(&s, others[k] + 1);
        ctx_t c;
        build(&c, &s, others[k]);
        reg_t g = {c.ep, s.ends[others[k]]};
        snprintf(param, sizeof param, "%d", others[k]);
        emit("W4", "c.epoll", param, measure(op_churn, &g));
        unbuild(&c);
        set_close(&s);
    }
    return 0;
}

/* Raw C baseline: poll(2). W1 idle set, W2 all ready, W3 ping-pong, W4
 * registration (a plain fd-indexed pollfd array: what C code keeps). */
#include <poll.h>

#include "common.h"

typedef struct {
    fdset_t *s;
    struct pollfd *pfds;
    int *out;
    int timeout;
} ctx_t;

static void build(ctx_t *c, fdset_t *s, int n) {
    c->s = s;
    c->pfds = malloc(sizeof(struct pollfd) * (n ? n : 1));
    c->out = malloc(sizeof(int) * 2 * (n ? n : 1));
    for (int i = 0; i < n; i++) {
        c->pfds[i].fd = s->ends[i];
        c->pfds[i].events = POLLIN;
        c->pfds[i].revents = 0;
    }
}

/* One poll(2) call per unit, ready (fd, revents) copied out. */
static long op_wait(void *p, long iters) {
    ctx_t *c = p;
    int n = c->s->n;
    for (long it = 0; it < iters; it++) {
        int r = poll(c->pfds, n, c->timeout);
        if (r < 0) die("poll");
        for (int i = 0, k = 0; k < r && i < n; i++) {
            if (c->pfds[i].revents) {
                c->out[2 * k] = c->pfds[i].fd;
                c->out[2 * k + 1] = c->pfds[i].revents;
                k++;
            }
        }
    }
    return iters;
}

/* W3: one unit = one token hop (read one byte, write it to the partner). */
static long op_ping(void *p, long iters) {
    ctx_t *c = p;
    int n = c->s->n;
    long done = 0;
    while (done < iters) {
        int r = poll(c->pfds, n, -1);
        if (r < 0) die("poll");
        for (int i = 0, k = 0; k < r && i < n; i++) {
            if (c->pfds[i].revents & POLLIN) {
                take_byte(c->pfds[i].fd);
                put_byte(c->s->partner[c->pfds[i].fd]);
                done++;
                k++;
            }
        }
    }
    return done;
}

/* W4: fd-indexed registry with swap-remove. */
typedef struct {
    struct pollfd *pfds;
    int n;
    int *index_of;
    int fd;
} reg_t;

static long op_churn(void *p, long iters) {
    reg_t *g = p;
    for (long it = 0; it < iters; it++) {
        int i = g->n++;
        g->index_of[g->fd] = i;
        g->pfds[i].fd = g->fd;
        g->pfds[i].events = POLLIN;
        __asm__ volatile("" ::: "memory");
        i = g->index_of[g->fd];
        g->pfds[i] = g->pfds[--g->n];
        g->index_of[g->pfds[i].fd] = i;
        g->index_of[g->fd] = -1;
        __asm__ volatile("" ::: "memory");
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
        emit("W1", "c.poll", param, measure(op_wait, &c));
        put_byte(s.partner[s.ends[0]]);
        snprintf(param, sizeof param, "%d:one", n);
        emit("W1", "c.poll", param, measure(op_wait, &c));
        take_byte(s.ends[0]);
        free(c.pfds);
        free(c.out);
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
        emit("W2", "c.poll", param, measure(op_wait, &c));
        free(c.pfds);
        free(c.out);
        set_close(&s);
    }
    for (size_t k = 0; k < sizeof W3_K / sizeof W3_K[0]; k++) {
        int kk = W3_K[k];
        fdset_t s;
        set_open(&s, 2 * kk);
        for (int i = 0; i < kk; i++) put_byte(s.ends[2 * i + 1]); /* token into a_i */
        ctx_t c;
        build(&c, &s, 2 * kk);
        snprintf(param, sizeof param, "%d", kk);
        double ns = measure(op_ping, &c);
        emit("W3", "c.poll", param, 1e9 / (2 * ns));
        free(c.pfds);
        free(c.out);
        set_close(&s);
    }
    int others[] = {0, 1000};
    for (int k = 0; k < 2; k++) {
        fdset_t s;
        set_open(&s, others[k] + 1);
        reg_t g;
        g.pfds = malloc(sizeof(struct pollfd) * (others[k] + 2));
        g.index_of = malloc(sizeof(int) * (s.maxfd + 1));
        for (int i = 0; i <= s.maxfd; i++) g.index_of[i] = -1;
        g.n = 0;
        for (int i = 0; i < others[k]; i++) {
            g.index_of[s.ends[i]] = g.n;
            g.pfds[g.n].fd = s.ends[i];
            g.pfds[g.n++].events = POLLIN;
        }
        g.fd = s.ends[others[k]];
        snprintf(param, sizeof param, "%d", others[k]);
        emit("W4", "c.poll", param, measure(op_churn, &g));
        free(g.pfds);
        free(g.index_of);
        set_close(&s);
    }
    return 0;
}

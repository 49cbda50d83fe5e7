/*
 * Two threads, two Lua states, one signal: the signal masks of the threads
 * that watch SIGUSR1 through select.kqueue.
 *
 * A watched signal is blocked in the thread that adds the registration, so
 * that it is counted instead of acted on; when that thread's last watcher
 * goes, the thread's mask is restored. Masks are per thread, so this must
 * hold per thread: a thread whose own code had blocked the signal keeps it
 * blocked; a thread where the module blocked it gets it unblocked; each
 * thread that watches the signal blocks it, whichever thread watched first;
 * and a process-directed signal is counted by both queues.
 *
 * Thread A blocks SIGUSR1 itself before anything; thread B does not. The
 * main thread blocks it too (so that process-directed signals are not
 * delivered to it) after starting them. Two rounds with both orders of
 * adding and closing. Prints "ok - ..." / "not ok - ..." lines.
 *
 * Usage: threads CPATH   (e.g. "build/lua54/?.so")
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static const char *cpath = "build/lua54/?.so";
static int failures;
static volatile sig_atomic_t handled;

static void on_usr1(int sig) {
  (void)sig;
  handled++;
}

static void check(int cond, const char *what) {
  printf("%s - threads: %s\n", cond ? "ok" : "not ok", what);
  if (!cond) failures++;
  fflush(stdout);
}

enum cmd { C_NONE, C_ADD, C_WAIT, C_CLOSE, C_MASK, C_QUIT };

struct worker {
  const char *name;
  int preblock;        /* blocks SIGUSR1 itself at start */
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  enum cmd cmd;
  int done;
  int result;          /* C_MASK: blocked?; C_WAIT: data of the event (-1: none) */
  char err[256];
  lua_State *L;
};

static int blocked_here(void) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, NULL, &cur);
  return sigismember(&cur, SIGUSR1) == 1;
}

static int lua_do(struct worker *w, const char *code) {
  if (luaL_loadstring(w->L, code) != 0 || lua_pcall(w->L, 0, 1, 0) != 0) {
    snprintf(w->err, sizeof w->err, "%s", lua_tostring(w->L, -1));
    lua_pop(w->L, 1);
    return -2;
  }
  int r = lua_isnumber(w->L, -1) ? (int)lua_tointeger(w->L, -1) : -1;
  lua_pop(w->L, 1);
  return r;
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  if (w->preblock) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
  }
  w->L = luaL_newstate();
  luaL_openlibs(w->L);
  lua_getglobal(w->L, "package");
  lua_pushstring(w->L, cpath);
  lua_setfield(w->L, -2, "cpath");
  lua_pop(w->L, 1);
  lua_pushinteger(w->L, SIGUSR1);
  lua_setglobal(w->L, "SIGUSR1");
  if (lua_do(w, "S = require 'select'") == -2) {
    for (char *p = w->err; *p; p++)
      if (*p == '\n') *p = ' ';
    printf("# %s: %s\n", w->name, w->err);
  }
  for (;;) {
    pthread_mutex_lock(&w->mu);
    while (w->cmd == C_NONE) pthread_cond_wait(&w->cv, &w->mu);
    enum cmd c = w->cmd;
    pthread_mutex_unlock(&w->mu);
    int r = 0;
    switch (c) {
      case C_ADD:
        r = lua_do(w, "kq = assert(S.kqueue())\n"
                      "assert(kq:control({ S.kevent(SIGUSR1, S.KQ_FILTER_SIGNAL, S.KQ_EV_ADD) }, 0))\n"
                      "return 0");
        break;
      case C_WAIT:
        r = lua_do(w, "local ev = assert(kq:control(nil, 1, 2.0))\n"
                      "return ev[1] and ev[1].data or -1");
        break;
      case C_CLOSE:
        r = lua_do(w, "kq:close(); kq = nil; collectgarbage(); return 0");
        break;
      case C_MASK:
        r = blocked_here();
        break;
      default:
        break;
    }
    pthread_mutex_lock(&w->mu);
    w->result = r;
    w->cmd = C_NONE;
    w->done = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (c == C_QUIT) break;
  }
  lua_close(w->L);
  return NULL;
}

static int ask(struct worker *w, enum cmd c) {
  pthread_mutex_lock(&w->mu);
  w->done = 0;
  w->err[0] = 0;
  w->cmd = c;
  pthread_cond_broadcast(&w->cv);
  while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
  int r = w->result;
  pthread_mutex_unlock(&w->mu);
  if (r == -2) printf("# %s: Lua error: %s\n", w->name, w->err);
  return r;
}

static void round_of(struct worker *first, struct worker *second, struct worker *a,
                     struct worker *b) {
  char what[200];
  printf("# round: %s adds first and closes first\n", first->name);
  check(ask(a, C_MASK) == 1 && ask(b, C_MASK) == 0,
        "before: SIGUSR1 blocked in A (its own doing), not in B");
  check(ask(first, C_ADD) == 0, "first watcher added");
  check(ask(second, C_ADD) == 0, "second watcher added");
  snprintf(what, sizeof what, "with a watcher in each thread (%s first), SIGUSR1 is blocked in both",
           first->name);
  check(ask(a, C_MASK) == 1 && ask(b, C_MASK) == 1, what);

  /* Process-directed: every thread blocks it, so it stays pending on the
   * process and the hub's signalfd reads it; both queues count it. */
  handled = 0;
  kill(getpid(), SIGUSR1);
  int da = ask(a, C_WAIT), db = ask(b, C_WAIT);
  snprintf(what, sizeof what, "a process-directed SIGUSR1 is counted by both queues (A: %d, B: %d, "
           "handler ran %d times)", da, db, (int)handled);
  check(da >= 1 && db >= 1 && handled == 0, what);
  /* Thread-directed, to each thread in turn. */
  /* Directed at B: only a wait in B can read it (signalfd reads the
   * caller's own pending signals), and it is counted for both queues. */
  pthread_kill(b->tid, SIGUSR1);
  db = ask(b, C_WAIT);
  da = ask(a, C_WAIT);
  snprintf(what, sizeof what, "SIGUSR1 sent to thread B is counted by both queues (A: %d, B: %d)",
           da, db);
  check(da >= 1 && db >= 1 && handled == 0, what);

  check(ask(first, C_CLOSE) == 0, "first watcher closed");
  if (first == b) {
    check(ask(a, C_MASK) == 1 && ask(b, C_MASK) == 0,
          "B closed its watcher: unblocked in B, still blocked in A (watcher and its own doing)");
  } else {
    check(ask(a, C_MASK) == 1 && ask(b, C_MASK) == 1,
          "A closed its watcher: still blocked in A (its own doing) and in B (its watcher)");
  }
  check(ask(second, C_CLOSE) == 0, "second watcher closed");
  check(ask(a, C_MASK) == 1, "after both closed: A keeps SIGUSR1 blocked (its own doing)");
  check(ask(b, C_MASK) == 0, "after both closed: B has SIGUSR1 unblocked again");
}

int main(int argc, char **argv) {
  if (argc > 1) cpath = argv[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);

  struct worker a = {.name = "A", .preblock = 1}, b = {.name = "B", .preblock = 0};
  struct worker *ws[2] = {&a, &b};
  for (int i = 0; i < 2; i++) {
    pthread_mutex_init(&ws[i]->mu, NULL);
    pthread_cond_init(&ws[i]->cv, NULL);
    pthread_create(&ws[i]->tid, NULL, worker_main, ws[i]);
  }
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL);

  round_of(&b, &a, &a, &b); /* B watches first: the module blocks it in B */
  round_of(&a, &b, &a, &b); /* A watches first: its own block is already there */

  for (int i = 0; i < 2; i++) {
    ask(ws[i], C_QUIT);
    pthread_join(ws[i]->tid, NULL);
  }
  /* Anything left pending on the process would now reach the handler. */
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  check(handled == 0, "no SIGUSR1 reached the handler");
  printf("# threads: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}

/*
 * Allocation-failure and finalizer-error sweeps for select.so.
 *
 * For N = 1, 2, 3, ... this host creates a fresh lua_State, runs
 * tests/host/workload.lua (which calls every entry point of the module with
 * ready descriptors) under lua_pcall and checks that the run ends with
 * success or a clean Lua error whose value is a string, that every
 * descriptor opened during the run is closed again after lua_close, and that
 * the Lua heap is empty after lua_close. It stops at the first N that the
 * run never reaches.
 *
 *   --mode alloc  the Nth growing allocation of the run fails, and so does
 *                 every later one until lua_pcall returns (persistent
 *                 failure: Lua 5.2+ retries a failed allocation once after
 *                 an emergency collection, so a one-shot failure would be
 *                 absorbed);
 *   --fork       each run in a forked child, so that a crash is reported
 *                 (signal, N, place) and the sweep goes on.
 *   --mode gc     nothing fails; from the Nth allocation on, the next
 *                 finalizer of a "bomb" userdata raises an error (the GC is
 *                 made to run a step at every allocation check so that
 *                 finalizers run at the allocation points of the module).
 *                 Lua 5.1-5.3 and LuaJIT propagate that error out of the
 *                 allocating call; Lua 5.4 turns it into a warning.
 *
 * Usage: allocfail [--mode alloc|gc] [--cpath P] [--lpath P] [--n K]
 *                  [--from K] [--to K] [--stride K] [--skip FILE] [--fork] [--verbose]
 *                  WORKLOAD.lua
 * Every run prints nothing unless it fails or --verbose is given; before each
 * run the host writes "run N" to the file named by $ALLOCFAIL_PROGRESS (if
 * set), so that a crash can be reported with its N. The last line is a
 * summary; the exit status is 0 when every run was clean.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifdef LUA_JITLIBNAME
#define HOST_LUA "luajit"
#elif LUA_VERSION_NUM == 501
#define HOST_LUA "lua5.1"
#elif LUA_VERSION_NUM == 502
#define HOST_LUA "lua5.2"
#elif LUA_VERSION_NUM == 503
#define HOST_LUA "lua5.3"
#else
#define HOST_LUA "lua5.4"
#endif

/* ---- the allocator ---------------------------------------------------- */

enum { MODE_ALLOC, MODE_GC };

struct alloc_state {
  int mode;
  int armed;           /* counting (and failing) only while armed */
  long count;          /* growing allocations since arming */
  long fail_at;        /* N */
  int failing;         /* MODE_ALLOC: N reached, every growth fails */
  int injected;        /* this run: an allocation failed / a bomb fired */
  int fire;            /* MODE_GC: the next bomb finalizer raises */
  size_t in_use;       /* bytes held by the state */
};

/* MODE_GC: what the bomb that fired saw. */
struct bomb_state {
  int fired;
  int in_module;       /* the frame below the finalizer is a function of select.so */
  char where[160];
};

/* What a run leaves for the loop; shared with the parent when each run is
 * a forked child (--fork), so that a crash still says where it happened. */
struct shared {
  struct alloc_state a;
  struct bomb_state b;
  char where[200];   /* where the failure was injected (the fire was armed) */
  char msg[1024];
  size_t heap_leak;
  int result;
};
static struct shared local_shared;
static struct shared *shm = &local_shared;
#define A (shm->a)
#define B (shm->b)
#define fail_where (shm->where)
#define heap_leak (shm->heap_leak)

/* Where the first injected failure happened: the innermost frames (C
 * function name, workload line), read without allocating. */
static lua_State *current;
static const char *progress;
static int verbose;

__attribute__((noinline)) static void note_where(void) {
  lua_Debug ar;
  size_t len = 0;
  fail_where[0] = 0;
  for (int level = 0; current && level < 4 && len < sizeof fail_where - 40; level++) {
    if (!lua_getstack(current, level, &ar) || !lua_getinfo(current, "Snl", &ar)) break;
    const char *src = strrchr(ar.short_src, '/');
    src = src ? src + 1 : ar.short_src;
    if (*ar.what == 'C')
      len += snprintf(fail_where + len, sizeof fail_where - len, "%s%s()", level ? " < " : "",
                      ar.name ? ar.name : "?");
    else
      len += snprintf(fail_where + len, sizeof fail_where - len, "%s%s:%d", level ? " < " : "",
                      src, ar.currentline);
  }
  /* ALLOCFAIL_BACKTRACE=1: the C backtrace of the injection, on stderr. */
  if (getenv("ALLOCFAIL_BACKTRACE")) {
    void *frames[48];
    int n = backtrace(frames, 48);
    fprintf(stderr, "backtrace of the injection at %s:\n", fail_where);
    backtrace_symbols_fd(frames, n, 2);
  }
  /* Written at once, so that a crash that follows can be located. */
  if (verbose) fprintf(stderr, "injected at %s\n", fail_where);
  if (progress) {
    FILE *f = fopen(progress, "a");
    if (f) {
      fprintf(f, "injected at %s\n", fail_where);
      fclose(f);
    }
  }
}

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    A.in_use -= old;
    return NULL;
  }
  if (A.armed && nsize > old) {
    A.count++;
    if (A.mode == MODE_ALLOC) {
      if (A.fail_at > 0 && A.count >= A.fail_at) A.failing = 1;
      if (A.failing) {
        if (!A.injected) note_where();
        A.injected = 1;
        return NULL;
      }
    } else if (A.count == A.fail_at) {
      note_where();
      A.fire = 1;
    }
  }
  void *p = realloc(ptr, nsize);
  if (p) A.in_use = A.in_use - old + nsize;
  return p;
}

/* ---- descriptors the script makes through `host` ---------------------- */

#define MAXFDS 256
static int tracked[MAXFDS];
static int ntracked;

static void track(int fd) {
  if (ntracked < MAXFDS) tracked[ntracked++] = fd;
}

static void untrack(int fd) {
  for (int i = 0; i < ntracked; i++)
    if (tracked[i] == fd) {
      tracked[i] = tracked[--ntracked];
      return;
    }
}

static void close_tracked(void) {
  while (ntracked > 0) close(tracked[--ntracked]);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static int h_pair(lua_State *L, int sock) {
  int fds[2];
  int rc = sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)
                : pipe2(fds, O_CLOEXEC);
  if (rc != 0) return luaL_error(L, "host: %s", strerror(errno));
  track(fds[0]);
  track(fds[1]);
  lua_pushinteger(L, fds[0]);
  lua_pushinteger(L, fds[1]);
  return 2;
}
static int h_pipe(lua_State *L) { return h_pair(L, 0); }
static int h_socketpair(lua_State *L) { return h_pair(L, 1); }

static int h_dup(lua_State *L) {
  int fd = dup((int)luaL_checkinteger(L, 1));
  if (fd < 0) return luaL_error(L, "host: dup: %s", strerror(errno));
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  track(fd);
  lua_pushinteger(L, fd);
  return 1;
}

/* The module now owns fd (epoll.fromfd): the host must not close it. */
static int h_untrack(lua_State *L) {
  untrack((int)luaL_checkinteger(L, 1));
  return 0;
}

static int h_close(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  untrack(fd);
  close(fd);
  return 0;
}

static int h_write(lua_State *L) {
  size_t len;
  int fd = (int)luaL_checkinteger(L, 1);
  const char *s = luaL_checklstring(L, 2, &len);
  lua_pushinteger(L, (lua_Integer)write(fd, s, len));
  return 1;
}

/* ---- finalizer bombs -------------------------------------------------- */

/* The file name of the shared object holding f ("" if unknown). */
static const char *object_of(lua_CFunction f) {
  Dl_info info;
  if (!f || !dladdr((void *)f, &info) || !info.dli_fname) return "";
  const char *slash = strrchr(info.dli_fname, '/');
  return slash ? slash + 1 : info.dli_fname;
}

static void make_bomb(lua_State *L);

__attribute__((noinline)) static int bomb_gc(lua_State *L) {
  if (!A.fire) {
    /* Keep one bomb waiting for the next cycle. */
    if (A.armed) {
      make_bomb(L);
      lua_pop(L, 1);
    }
    return 0;
  }
  A.fire = 0;
  A.injected = 1;
  B.fired = 1;
  lua_Debug ar;
  B.in_module = 0;
  snprintf(B.where, sizeof B.where, "?");
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Snf", &ar)) {
    lua_CFunction f = lua_iscfunction(L, -1) ? lua_tocfunction(L, -1) : NULL;
    lua_pop(L, 1);
    const char *obj = object_of(f);
    B.in_module = strcmp(obj, "select.so") == 0;
    snprintf(B.where, sizeof B.where, "%s %s%s%s", ar.what, ar.name ? ar.name : "?",
             *obj ? " in " : "", obj);
  }
  if (getenv("ALLOCFAIL_BACKTRACE")) {
    void *frames[48];
    int n = backtrace(frames, 48);
    fprintf(stderr, "backtrace of the finalizer error (raised in %s):\n", B.where);
    backtrace_symbols_fd(frames, n, 2);
  }
  if (progress) {
    FILE *pf = fopen(progress, "a");
    if (pf) {
      fprintf(pf, "finalizer raised in %s\n", B.where);
      fclose(pf);
    }
  }
  /* lua_error, not luaL_error: luaL_where would read the caller's current
   * line (see tests/host/valgrind.supp). */
  lua_pushstring(L, "injected finalizer error");
  return lua_error(L);
}

static void make_bomb(lua_State *L) {
  lua_newuserdata(L, 1);
  if (luaL_newmetatable(L, "host.bomb")) {
    lua_pushcfunction(L, bomb_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
}

static int h_bomb(lua_State *L) {
  make_bomb(L);
  return 1;
}

/* ---- one run ---------------------------------------------------------- */

static const char *preload =
    "for _, name in ipairs { 'select.selectors', 'select.compat' } do\n"
    "  local p = name:gsub('%.', '/')\n"
    "  for tmpl in package.path:gmatch('[^;]+') do\n"
    "    local f = loadfile((tmpl:gsub('%?', p)))\n"
    "    if f then package.preload[name] = f break end\n"
    "  end\n"
    "end\n";
static const char *lpath = "lua/?.lua;lua/?/init.lua";
static const char *cpath = "build/lua54/?.so";
static const char *workload = "tests/host/workload.lua";
static int keep_value(lua_State *L) {
  (void)L;
  /* Keep the value as it is: the check wants to see what was raised. A
   * traceback would allocate, and allocation fails in this state. */
  return 1;
}

#if LUA_VERSION_NUM >= 504
static int warnings;
static void host_warn(void *ud, const char *msg, int tocont) {
  (void)ud;
  (void)msg;
  if (!tocont) warnings++;
}
#endif

static const luaL_Reg host_fns[] = {
    {"pipe", h_pipe},       {"socketpair", h_socketpair}, {"dup", h_dup},
    {"untrack", h_untrack}, {"close", h_close},           {"write", h_write},
    {"bomb", h_bomb},       {NULL, NULL}};

enum { RUN_OK, RUN_ERR, RUN_BAD };

/* Returns RUN_OK (the script ended normally), RUN_ERR (a clean error), RUN_BAD. */
static int run(long n, int mode, long *allocs, char *msg, size_t msglen) {
  int fds_before = count_fds();
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  fail_where[0] = 0;
  heap_leak = 0;
  A.mode = mode;
  A.fail_at = n;
  msg[0] = 0;
  lua_State *L = lua_newstate(host_alloc, NULL);
  if (!L) {
    snprintf(msg, msglen, "lua_newstate failed (custom allocators unsupported?)");
    return RUN_BAD;
  }
#if LUA_VERSION_NUM >= 504
  lua_setwarnf(L, host_warn, NULL);
#endif
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, lpath);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, cpath);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_newtable(L);
  for (const luaL_Reg *r = host_fns; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pushstring(L, mode == MODE_GC ? "gc" : "alloc");
  lua_setfield(L, -2, "mode");
  lua_setglobal(L, "host");
  /* The module's Lua files are compiled here, before arming: their code
   * runs under the sweep, the parser does not (LuaJIT's loader leaks its
   * FILE when an allocation fails after fopen). */
  if (luaL_loadstring(L, preload) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
    snprintf(msg, msglen, "cannot preload: %s", lua_tostring(L, -1));
    lua_close(L);
    return RUN_BAD;
  }
  lua_pushcfunction(L, keep_value);
  if (luaL_loadfile(L, workload) != 0) {
    snprintf(msg, msglen, "cannot load workload: %s", lua_tostring(L, -1));
    lua_close(L);
    return RUN_BAD;
  }
  if (mode == MODE_GC) {
    /* A GC step at every allocation check, so that finalizers run at the
     * allocation points of the module; one bomb waiting at all times. */
    lua_gc(L, LUA_GCSETPAUSE, 0);
    lua_gc(L, LUA_GCSETSTEPMUL, 2000);
    /* A full cycle makes the new pause count (the next threshold is 0). */
    lua_gc(L, LUA_GCCOLLECT, 0);
    make_bomb(L);
    lua_pop(L, 1);
  }
  current = L;
  A.armed = 1;
  int rc = lua_pcall(L, 0, 0, -2);
  A.armed = 0;
  A.failing = 0;
  A.fire = 0;
  *allocs = A.count;
  int result = RUN_OK;
  if (rc != 0) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_getglobal(L, "tostring");
      lua_pushvalue(L, -2);
      lua_pcall(L, 1, 1, 0);
      snprintf(msg, msglen, "error value is a %s, not a string: %s",
               luaL_typename(L, -2), lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
      result = RUN_BAD;
    } else {
      const char *s = lua_tostring(L, -1);
      snprintf(msg, msglen, "%s", s);
      result = RUN_ERR;
      if (strstr(s, "panic") || strstr(s, "internal error")) result = RUN_BAD;
    }
  } else if (A.injected && mode == MODE_ALLOC) {
    /* A failed allocation has to surface as an error (Lua itself never
     * swallows one outside of pcall, and the workload calls no pcall). */
    snprintf(msg, msglen, "an allocation failed but the run succeeded");
    result = RUN_BAD;
  }
  current = NULL;
  lua_close(L);
  close_tracked();
  /* Only the interpreter can leave its own heap non-empty: lua_close frees
   * every collectable object, whatever the module did. Counted apart. */
  heap_leak = A.in_use;
  int fds_after = count_fds();
  if (fds_after != fds_before) {
    snprintf(msg + strlen(msg), msglen - strlen(msg),
             " [descriptors: %d before the run, %d after]", fds_before, fds_after);
    result = RUN_BAD;
  }
  return result;
}

static int use_fork;
static int crashed;

/* --skip FILE: failure points not to run (one N per line), e.g. those that
 * crashed in a forked sweep, so that a run under valgrind is one process. */
static long *skips;
static size_t nskips;

static void read_skips(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  long n;
  size_t cap = 0;
  while (fscanf(f, "%ld", &n) == 1) {
    if (nskips == cap) {
      cap = cap ? cap * 2 : 64;
      skips = realloc(skips, cap * sizeof *skips);
      if (!skips) exit(2);
    }
    skips[nskips++] = n;
  }
  fclose(f);
}

static int skipped(long n) {
  for (size_t i = 0; i < nskips; i++)
    if (skips[i] == n) return 1;
  return 0;
}

/* One run, in a forked child with --fork: a crash of the run is then a
 * result of the loop (signal and place) instead of the end of the sweep. */
static int do_run(long n, int mode, long *allocs) {
  crashed = 0;
  if (!use_fork) return run(n, mode, allocs, shm->msg, sizeof shm->msg);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("allocfail: fork");
    exit(2);
  }
  if (pid == 0) {
    shm->result = run(n, mode, allocs, shm->msg, sizeof shm->msg);
    fflush(stdout);
    _exit(0);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  *allocs = A.count;
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return shm->result;
  crashed = 1;
  if (WIFSIGNALED(st))
    snprintf(shm->msg, sizeof shm->msg, "crashed: signal %d (%s)", WTERMSIG(st),
             strsignal(WTERMSIG(st)));
  else
    snprintf(shm->msg, sizeof shm->msg, "crashed: exit status %d", WEXITSTATUS(st));
  return RUN_BAD;
}

int main(int argc, char **argv) {
  int mode = MODE_ALLOC;
  long only = 0, from = 1, to = 0, stride = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--mode") && i + 1 < argc) {
      mode = strcmp(argv[++i], "gc") == 0 ? MODE_GC : MODE_ALLOC;
    } else if (!strcmp(a, "--cpath") && i + 1 < argc) {
      cpath = argv[++i];
    } else if (!strcmp(a, "--lpath") && i + 1 < argc) {
      lpath = argv[++i];
    } else if (!strcmp(a, "--n") && i + 1 < argc) {
      only = atol(argv[++i]);
    } else if (!strcmp(a, "--from") && i + 1 < argc) {
      from = atol(argv[++i]);
    } else if (!strcmp(a, "--to") && i + 1 < argc) {
      to = atol(argv[++i]);
    } else if (!strcmp(a, "--stride") && i + 1 < argc) {
      stride = atol(argv[++i]);
    } else if (!strcmp(a, "--skip") && i + 1 < argc) {
      read_skips(argv[++i]);
    } else if (!strcmp(a, "--fork")) {
      use_fork = 1;
    } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
      verbose = 1;
    } else if (a[0] != '-') {
      workload = a;
    } else {
      fprintf(stderr, "allocfail: unknown option %s\n", a);
      return 2;
    }
  }
  if (stride < 1) stride = 1;
  if (use_fork) {
    void *m = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      perror("allocfail: mmap");
      return 2;
    }
    shm = m;
  }
  progress = getenv("ALLOCFAIL_PROGRESS");
  const char *mname = mode == MODE_GC ? "gc" : "alloc";
  const char *msg = shm->msg;
  long allocs;

  /* A reference run: nothing injected; it must succeed. */
  int ref = do_run(0, mode, &allocs);
  long total = allocs;
  if (ref != RUN_OK) {
    printf("%s %s: the run without injection failed: %s\n", HOST_LUA, mname, msg);
    return 1;
  }
  if (verbose) printf("%s %s: %ld allocations in a clean run\n", HOST_LUA, mname, total);

  long runs = 0, injected = 0, errors = 0, successes = 0, bad = 0, in_module = 0, heap_leaks = 0;
  long first = only ? only : from;
  for (long n = first;; n += stride) {
    if (to && n > to) break;
    if (!only && skipped(n)) continue;
    if (progress) {
      FILE *f = fopen(progress, "w");
      if (f) {
        fprintf(f, "run %ld\ncounts %ld %ld %ld %ld %ld %ld %ld\n", n, runs, injected, errors,
                successes, in_module, bad, heap_leaks);
        fclose(f);
      }
    }
    int r = do_run(n, mode, &allocs);
    runs++;
    if (A.injected) injected++;
    if (B.fired && B.in_module) in_module++;
    if (heap_leak) {
      heap_leaks++;
      printf("# %s %s N=%ld: the interpreter left %zu bytes of its heap after lua_close "
             "(injected at %s)\n", HOST_LUA, mname, n, heap_leak, fail_where);
    }
    if (r == RUN_OK) successes++;
    if (r == RUN_ERR) errors++;
    if (r == RUN_BAD) {
      bad++;
      if (mode == MODE_GC && B.fired)
        printf("FAIL %s %s N=%ld: %s (finalizer raised in %s)\n", HOST_LUA, mname, n, msg,
               B.where);
      else
        printf("FAIL %s %s N=%ld: %s (%s at %s)\n", HOST_LUA, mname, n, msg,
               mode == MODE_GC ? "armed" : "injected",
               A.injected || mode == MODE_GC ? fail_where : "-");
    } else if (verbose) {
      printf("%s %s N=%ld: %s%s (injected at %s)%s%s%s\n", HOST_LUA, mname, n,
             r == RUN_OK ? "success" : "error: ", msg, fail_where,
             B.fired ? " [finalizer raised in " : "", B.fired ? B.where : "",
             B.fired ? "]" : "");
    }
    fflush(stdout);
    if (only) break;
    /* Done when the run never reached N (nothing was injected). */
    if (!crashed && !A.injected && (mode == MODE_ALLOC || allocs < n)) break;
  }
  printf("%s %s: %ld runs (clean run: %ld allocations, stride %ld), %ld injected, "
         "%ld clean errors, %ld successes, %ld raised in select.so, %ld bad, "
         "%ld interpreter heap leaks\n",
         HOST_LUA, mname, runs, total, stride, injected, errors, successes, in_module, bad,
         heap_leaks);
  return bad ? 1 : 0;
}

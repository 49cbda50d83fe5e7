/* The floor for a Lua binding of poll(2) and epoll_wait(2): the same methods
 * as ours (p:poll(ms), ep:poll(seconds) -> array of {fd, events} pairs, and
 * select(rlist, wlist, xlist, seconds) -> three arrays of the ready values),
 * written in C the usual way: luaL_checkudata for self, luaL_optnumber for
 * the timeout, no other checks, and nothing else. bench/lua/floor.lua drives
 * it with the W1/W2 loops of ours.lua, so "ours / floor" is what our binding
 * costs beyond the least any Lua C function doing the same job can cost.
 * Built by bench/run.sh against Lua 5.4 and LuaJIT. Not part of the module. */
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen lua_objlen
#endif

typedef struct {
    int ep, n;
    struct epoll_event *evs;
} floor_epoll;

typedef struct {
    int n, cap;
    struct pollfd *fds;
} floor_poll;

static void push_pair(lua_State *L, int k, int fd, int events) {
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, fd);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, events);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, k);
}

static int ep_new(lua_State *L) {
    floor_epoll *e = lua_newuserdata(L, sizeof *e);
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->n = 0;
    e->evs = NULL;
    luaL_getmetatable(L, "floor.epoll");
    lua_setmetatable(L, -2);
    return 1;
}

static int ep_register(lua_State *L) {
    floor_epoll *e = luaL_checkudata(L, 1, "floor.epoll");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = (int)luaL_checkinteger(L, 2)};
    epoll_ctl(e->ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
    e->n++;
    e->evs = realloc(e->evs, sizeof *e->evs * e->n);
    return 0;
}

static int ep_poll(lua_State *L) {
    floor_epoll *e = luaL_checkudata(L, 1, "floor.epoll");
    double t = luaL_optnumber(L, 2, -1);
    int n = epoll_wait(e->ep, e->evs, e->n ? e->n : 1, t < 0 ? -1 : (int)ceil(t * 1000));
    if (n < 0) n = 0;
    lua_createtable(L, n, 0);
    for (int k = 0; k < n; k++) push_pair(L, k + 1, e->evs[k].data.fd, (int)e->evs[k].events);
    return 1;
}

static int ep_gc(lua_State *L) {
    floor_epoll *e = luaL_checkudata(L, 1, "floor.epoll");
    close(e->ep);
    free(e->evs);
    return 0;
}

static int p_new(lua_State *L) {
    floor_poll *p = lua_newuserdata(L, sizeof *p);
    p->n = p->cap = 0;
    p->fds = NULL;
    luaL_getmetatable(L, "floor.poll");
    lua_setmetatable(L, -2);
    return 1;
}

static int p_register(lua_State *L) {
    floor_poll *p = luaL_checkudata(L, 1, "floor.poll");
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        p->fds = realloc(p->fds, sizeof *p->fds * p->cap);
    }
    p->fds[p->n].fd = (int)luaL_checkinteger(L, 2);
    p->fds[p->n].events = POLLIN;
    p->fds[p->n].revents = 0;
    p->n++;
    return 0;
}

static int p_poll(lua_State *L) {
    floor_poll *p = luaL_checkudata(L, 1, "floor.poll");
    int ms = (int)luaL_optnumber(L, 2, -1);
    int n = poll(p->fds, p->n, ms);
    if (n < 0) n = 0;
    lua_createtable(L, n, 0);
    for (int i = 0, k = 0; i < p->n && k < n; i++)
        if (p->fds[i].revents) push_pair(L, ++k, p->fds[i].fd, p->fds[i].revents);
    return 1;
}

static int p_gc(lua_State *L) {
    floor_poll *p = luaL_checkudata(L, 1, "floor.poll");
    free(p->fds);
    return 0;
}

/* select.select on poll(2), as ours: the lists' integers read with
 * lua_rawgeti + lua_tointeger, no checks; each result array built at its
 * final size from the list values. */
static int sel_select(lua_State *L) {
    static const short want[3] = {POLLIN, POLLOUT, POLLPRI};
    static const short ready[3] = {POLLIN | POLLHUP | POLLERR, POLLOUT | POLLERR, POLLPRI};
    static struct pollfd *fds;
    static size_t cap;
    size_t len[3], n = 0;
    for (int k = 0; k < 3; k++) {
        len[k] = lua_istable(L, k + 1) ? lua_rawlen(L, k + 1) : 0;
        n += len[k];
    }
    if (n > cap) {
        cap = n;
        fds = realloc(fds, sizeof *fds * cap);
    }
    for (int k = 0, j = 0; k < 3; k++)
        for (size_t i = 1; i <= len[k]; i++, j++) {
            lua_rawgeti(L, k + 1, (int)i);
            fds[j].fd = (int)lua_tointeger(L, -1);
            fds[j].events = want[k];
            fds[j].revents = 0;
            lua_pop(L, 1);
        }
    double t = luaL_optnumber(L, 4, -1);
    int rc = poll(fds, n, t < 0 ? -1 : (int)ceil(t * 1000));
    if (rc < 0) rc = 0;
    for (int k = 0, j = 0; k < 3; k++) {
        int count = 0;
        for (size_t i = 0; i < len[k]; i++) count += (fds[j + i].revents & ready[k]) != 0;
        lua_createtable(L, count, 0);
        for (size_t i = 0, m = 0; m < (size_t)count; i++)
            if (fds[j + i].revents & ready[k]) {
                lua_rawgeti(L, k + 1, (int)i + 1);
                lua_rawseti(L, -2, (int)++m);
            }
        j += len[k];
    }
    return 3;
}

static void class(lua_State *L, const char *name, lua_CFunction reg, lua_CFunction wait,
                  lua_CFunction gc) {
    luaL_newmetatable(L, name);
    lua_newtable(L);
    lua_pushcfunction(L, reg);
    lua_setfield(L, -2, "register");
    lua_pushcfunction(L, wait);
    lua_setfield(L, -2, "poll");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

int luaopen_luafloor(lua_State *L) {
    class(L, "floor.epoll", ep_register, ep_poll, ep_gc);
    class(L, "floor.poll", p_register, p_poll, p_gc);
    lua_newtable(L);
    lua_pushcfunction(L, ep_new);
    lua_setfield(L, -2, "epoll");
    lua_pushcfunction(L, p_new);
    lua_setfield(L, -2, "poll");
    lua_pushcfunction(L, sel_select);
    lua_setfield(L, -2, "select");
    return 1;
}

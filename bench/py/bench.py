"""CPython peers: select.select, select.poll, select.epoll, selectors.DefaultSelector.

Same workloads, descriptors (AF_UNIX stream socket pairs, both ends
registered), clock (process CPU time) and median-of-batches method as the C
baselines; see bench/README.md. Prints "R<TAB>workload<TAB>impl<TAB>param<TAB>value".
"""

import os
import select
import selectors
import socket
import time

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
BATCH = float(os.environ.get("BENCH_BATCH_MS", "40")) * 1e6
clock = time.process_time_ns
FD_SETSIZE = 1024

W1_N = (1, 10, 100, 1000, 10000)
W2_N = (100, 1000)
W3_K = (1, 64, 512)
W4_OTHERS = (0, 1000)


def measure(op):
    """Median cost in ns of one unit; op(iters) runs about iters units, returns how many."""
    iters = 1
    op(1)  # warm-up: first calls may pay for lazy set-up
    while True:
        t0 = clock()
        done = op(iters)
        dt = clock() - t0
        if dt >= BATCH / 20:
            iters = max(1, int(done * BATCH / dt))
            break
        iters *= 4
    v = []
    for _ in range(RUNS):
        t0 = clock()
        done = op(iters)
        v.append((clock() - t0) / done)
    v.sort()
    return v[len(v) // 2]


def emit(w, impl, param, value):
    if isinstance(value, str):
        print(f"R\t{w}\t{impl}\t{param}\t{value}", flush=True)
    else:
        print(f"R\t{w}\t{impl}\t{param}\t{value:.1f}", flush=True)


class FdSet:
    """n registered ends: a1, b1, a2, b2, ... of ceil(n/2) socket pairs."""

    def __init__(self, n):
        self.socks = []
        for _ in range((n + 1) // 2):
            self.socks.extend(socket.socketpair())
        for s in self.socks:
            s.setblocking(False)
        fds = [s.fileno() for s in self.socks]
        self.ends = fds[:n]
        self.partner = {}
        for i in range(0, len(fds), 2):
            self.partner[fds[i]] = fds[i + 1]
            self.partner[fds[i + 1]] = fds[i]
        self.maxfd = max(fds)

    def fill(self):
        for fd in self.ends:
            os.write(self.partner[fd], b"x")

    def close(self):
        for s in self.socks:
            s.close()


def waiters(fs):
    """(impl, op) for every API on the registered set fs, timeout 0."""
    out = []
    if fs.maxfd < FD_SETSIZE:
        rl = list(fs.ends)
        sel = select.select

        def op_select(it):
            for _ in range(it):
                sel(rl, [], [], 0)
            return it

        out.append(("py.select", op_select, None))
    else:
        out.append(("py.select", None, None))
    p = select.poll()
    for fd in fs.ends:
        p.register(fd, select.POLLIN)
    pp = p.poll

    def op_poll(it):
        for _ in range(it):
            pp(0)
        return it

    out.append(("py.poll", op_poll, None))
    ep = select.epoll()
    for fd in fs.ends:
        ep.register(fd, select.EPOLLIN)
    epp = ep.poll

    def op_epoll(it):
        for _ in range(it):
            epp(0)
        return it

    out.append(("py.epoll", op_epoll, ep))
    ds = selectors.DefaultSelector()
    for fd in fs.ends:
        ds.register(fd, selectors.EVENT_READ, fs.partner[fd])
    dss = ds.select

    def op_selectors(it):
        for _ in range(it):
            dss(0)
        return it

    out.append(("py.selectors", op_selectors, ds))
    return out


def w1():
    for n in W1_N:
        fs = FdSet(n)
        ws = waiters(fs)
        for kind in ("idle", "one"):
            if kind == "one":
                os.write(fs.partner[fs.ends[0]], b"x")
            for impl, op, _ in ws:
                emit("W1", impl, f"{n}:{kind}", measure(op) if op else "n/a (FD_SETSIZE)")
        for _, _, obj in ws:
            if obj is not None:
                obj.close()
        fs.close()


def w2():
    for n in W2_N:
        fs = FdSet(n)
        fs.fill()
        ws = waiters(fs)
        for impl, op, _ in ws:
            emit("W2", impl, str(n), measure(op) if op else "n/a (FD_SETSIZE)")
        for _, _, obj in ws:
            if obj is not None:
                obj.close()
        fs.close()


def w3():
    rd, wr = os.read, os.write
    for k in W3_K:
        fs = FdSet(2 * k)
        part = fs.partner
        for i in range(k):
            wr(fs.ends[2 * i + 1], b"x")
        if fs.maxfd < FD_SETSIZE:
            rl = list(fs.ends)
            sel = select.select

            def op_select(it):
                done = 0
                while done < it:
                    r, _, _ = sel(rl, [], [])
                    for fd in r:
                        rd(fd, 1)
                        wr(part[fd], b"x")
                    done += len(r)
                return done

            emit("W3", "py.select", str(k), 1e9 / (2 * measure(op_select)))
        else:
            emit("W3", "py.select", str(k), "n/a (FD_SETSIZE)")

        p = select.poll()
        for fd in fs.ends:
            p.register(fd, select.POLLIN)

        def op_poll(it):
            done = 0
            while done < it:
                evs = p.poll()
                for fd, _ in evs:
                    rd(fd, 1)
                    wr(part[fd], b"x")
                done += len(evs)
            return done

        emit("W3", "py.poll", str(k), 1e9 / (2 * measure(op_poll)))

        ep = select.epoll()
        for fd in fs.ends:
            ep.register(fd, select.EPOLLIN)

        def op_epoll(it):
            done = 0
            while done < it:
                evs = ep.poll()
                for fd, _ in evs:
                    rd(fd, 1)
                    wr(part[fd], b"x")
                done += len(evs)
            return done

        emit("W3", "py.epoll", str(k), 1e9 / (2 * measure(op_epoll)))
        ep.close()

        ds = selectors.DefaultSelector()
        for fd in fs.ends:
            ds.register(fd, selectors.EVENT_READ, part[fd])

        def op_selectors(it):
            done = 0
            while done < it:
                evs = ds.select()
                for key, _ in evs:
                    rd(key.fd, 1)
                    wr(key.data, b"x")
                done += len(evs)
            return done

        emit("W3", "py.selectors", str(k), 1e9 / (2 * measure(op_selectors)))
        ds.close()
        fs.close()


def w4():
    for others in W4_OTHERS:
        fs = FdSet(others + 1)
        bg, fd = fs.ends[:others], fs.ends[others]

        p = select.poll()
        for x in bg:
            p.register(x, select.POLLIN)
        reg, unreg, m = p.register, p.unregister, select.POLLIN

        def op_poll(it):
            for _ in range(it):
                reg(fd, m)
                unreg(fd)
            return it

        emit("W4", "py.poll", str(others), measure(op_poll))

        ep = select.epoll()
        for x in bg:
            ep.register(x, select.EPOLLIN)
        ereg, eunreg, em = ep.register, ep.unregister, select.EPOLLIN

        def op_epoll(it):
            for _ in range(it):
                ereg(fd, em)
                eunreg(fd)
            return it

        emit("W4", "py.epoll", str(others), measure(op_epoll))
        ep.close()

        ds = selectors.DefaultSelector()
        for x in bg:
            ds.register(x, selectors.EVENT_READ)
        sreg, sunreg, sm = ds.register, ds.unregister, selectors.EVENT_READ

        def op_selectors(it):
            for _ in range(it):
                sreg(fd, sm)
                sunreg(fd)
            return it

        emit("W4", "py.selectors", str(others), measure(op_selectors))
        ds.close()
        fs.close()


if __name__ == "__main__":
    w1()
    w2()
    w3()
    w4()

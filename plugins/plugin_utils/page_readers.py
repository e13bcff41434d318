# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helper processes that read API answers on other CPU cores (standard library only).

Reading a page of 500 EC2 instances costs about 20 ms of CPU even with a C XML parser, under
the GIL that the worker threads share: regions answering at about the same time queue their
pages behind each other, and the whole fetch pays the sum. :class:`PageReaders` runs the
same pure reader function (bytes in, plain data out) in a few child processes of the same
interpreter, started with ``-I -S`` and loading nothing but the standard library and the
reader's own module. A thread hands the raw answer over a pipe and gets the result back as
``marshal`` data (about 1 ms per page to load), and the GIL stays free for the others
meanwhile.

Nothing here may change a result. Whatever goes wrong with a child (it cannot start, dies,
answers something malformed or takes longer than ``timeout``) retires that child, and the page
is read in the calling thread by the same function; when the reader itself raises in the
child, the page is read again in the calling thread, so the caller sees exactly the result or
the exception that the in-thread reader gives.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import resource
import select
import struct
import subprocess
import sys
import threading
import time

# frame: kind (1 byte) + payload length; kinds: P page (to the child), O result, E the reader
# raised (the page is read again in the calling thread)
HEADER = struct.Struct("!cI")

# The child program. It imports nothing but what it needs (with the EC2 reader's own imports,
# a child costs about 27 ms of CPU to start here), executes the reader's module from its file
# (under -I -S nothing but the standard library is importable), then serves pages until its
# input closes.
CHILD_CODE = """
import gc, marshal, os, struct, sys
HEADER = struct.Struct(%r)


def serve(reader, source, sink):
    while True:
        header = source.read(HEADER.size)
        if len(header) < HEADER.size:
            return
        size = HEADER.unpack(header)[1]
        body = source.read(size)
        if len(body) < size:
            return
        try:
            kind, payload = b"O", marshal.dumps(reader(body))
        except Exception as exc:  # the calling thread reads this page again and sees it itself
            kind = b"E"
            payload = ("%%s: %%s" %% (type(exc).__name__, exc)).encode("utf-8", "replace")
        sink.write(HEADER.pack(kind, len(payload)))
        sink.write(payload)
        sink.flush()


if __name__ == "__main__":
    gc.disable()  # pages are acyclic; reference counting frees them
    namespace = {"__name__": "_fleetforge_page_reader", "__file__": sys.argv[1]}
    with open(sys.argv[1], "rb") as module:
        exec(compile(module.read(), sys.argv[1], "exec"), namespace)
    serve(namespace[sys.argv[2]], sys.stdin.buffer, sys.stdout.buffer)
    os._exit(0)  # every answer is written and flushed: nothing left to tear down
""" % HEADER.format

# 1 MiB pipes (Linux's default limit for unprivileged processes): a page crosses in one or two
# writes instead of 26 of 64 KiB, each of which waits for the other side to be scheduled
PIPE_SIZE = 1 << 20


def available_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class ChildFailed(Exception):
    """A child did not answer as the protocol says; it is retired."""


def _wait(fd, events, deadline):
    poller = select.poll()
    poller.register(fd, events | select.POLLERR | select.POLLHUP)
    left = deadline - time.monotonic()
    if left <= 0 or not poller.poll(left * 1000):
        raise ChildFailed("no answer within the time limit")


def _write_all(fd, data, deadline):
    view = memoryview(data)
    while view:
        _wait(fd, select.POLLOUT, deadline)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
        except OSError as exc:  # BrokenPipeError: the child is gone
            raise ChildFailed("cannot write to it: %s" % exc) from None


def _read_exact(fd, size, deadline):
    data = bytearray()
    while len(data) < size:
        _wait(fd, select.POLLIN, deadline)
        try:
            chunk = os.read(fd, min(size - len(data), 1 << 20))
        except BlockingIOError:
            continue
        if not chunk:
            raise ChildFailed("it closed its output")
        data += chunk
    return data


class _Child:
    def __init__(self, process):
        self.process = process
        self.to_child = process.stdin.fileno()
        self.from_child = process.stdout.fileno()
        for fd in (self.to_child, self.from_child):
            os.set_blocking(fd, False)
            # not Linux, or a lower limit: the default pipes, only slower
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def exchange(self, body, timeout):
        """(True, result) or (False, the reader's error text)."""
        deadline = time.monotonic() + timeout
        _write_all(self.to_child, HEADER.pack(b"P", len(body)), deadline)
        _write_all(self.to_child, body, deadline)  # not joined: that would copy the page again
        kind, size = HEADER.unpack(_read_exact(self.from_child, HEADER.size, deadline))
        payload = _read_exact(self.from_child, size, deadline)
        if kind == b"O":
            try:
                return True, marshal.loads(payload)
            except (EOFError, ValueError, TypeError) as exc:
                raise ChildFailed("malformed answer: %s" % exc) from None
        if kind == b"E":
            return False, payload.decode("utf-8", "replace")
        raise ChildFailed("unknown answer kind %r" % kind)

    def peak_rss_kib(self):
        """The child's peak resident memory (Linux's VmHWM), 0 where /proc does not tell."""
        try:
            with open("/proc/%d/status" % self.process.pid, encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def hang_up(self):
        """Close both pipes: the child sees the end of its input and exits."""
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()

    def reap(self):
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self):
        self.hang_up()
        self.reap()


class PageReaders:
    """``read(body)`` = ``reader(body)``, done by one of ``workers`` child processes.

    ``reader`` must be a module-level function of a module that imports only the standard
    library, take bytes and return data that ``marshal`` can carry (dicts, lists, str, int...).

    The children start at once, or with ``start_after=N`` once ``request_sent()`` has been called
    N times (by a background thread): starting Python processes costs CPU that the caller needs
    while it prepares its first requests, and a page can only arrive a round trip after one is
    sent. Until the children are there, pages are read in the calling thread; once they are,
    a thread waits for an idle one.

    Use as a context manager; ``notes`` lists what went wrong (for a -vvv line),
    ``pages_by_children`` / ``pages_in_thread`` count where the pages were read, and
    ``cpu_seconds`` and ``peak_rss_kib`` are what the children used (after ``close``; other
    children that this process reaps meanwhile count in ``cpu_seconds`` too).
    """

    def __init__(self, reader, workers, timeout=30.0, start_after=0):
        self.reader = reader
        self.workers = workers
        self.timeout = timeout
        self.notes = []
        self.pages_by_children = 0
        self.pages_in_thread = 0
        self.cpu_seconds = 0.0  # of the children, known once they are stopped
        self.peak_rss_kib = 0  # the children's peaks added up, known once they are stopped
        self._children_cpu = self._reaped_cpu()
        self._idle = []
        self._all = []
        self._alive = 0
        self._starting = True  # pages are read in the calling thread until the children are up
        self._closed = False
        self._ready = threading.Condition()
        self._requests_left = start_after
        self._go = threading.Event()
        self._starter = None
        if start_after <= 0:
            self._start_all()
        else:
            self._starter = threading.Thread(target=self._start_when_asked, daemon=True,
                                             name="fleetforge-page-readers")
            self._starter.start()

    def request_sent(self):
        """Count one request sent; the children start after the ``start_after``-th."""
        with self._ready:
            self._requests_left -= 1
            if self._requests_left == 0:
                self._go.set()

    def _start_when_asked(self):
        self._go.wait()
        self._start_all()

    def _start_all(self):
        while True:
            with self._ready:
                if self._closed or self._alive >= self.workers:
                    self._starting = False
                    self._ready.notify_all()
                    return
            child = self._start()
            with self._ready:
                if child is None or self._closed:
                    self._starting = False
                    self._ready.notify_all()
                    break
                self._idle.append(child)
                self._all.append(child)
                self._alive += 1
                self._ready.notify()
        if child is not None:  # closed while this one started
            child.stop()

    def _start(self):
        module = sys.modules.get(self.reader.__module__)
        path = getattr(module, "__file__", None)
        if not sys.executable or not path or not os.path.isfile(path):
            self.notes.append("no interpreter or reader file to start a child with")
            return None
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", CHILD_CODE, os.path.abspath(path),
                 self.reader.__name__],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                bufsize=0, close_fds=True)
        except OSError as exc:
            self.notes.append("cannot start a child: %s" % exc)
            return None
        return _Child(process)

    @property
    def children(self):
        return self._alive

    def _take(self):
        with self._ready:
            while not self._idle and self._alive and not self._starting:
                self._ready.wait()
            return self._idle.pop() if self._idle else None

    def _give_back(self, child, failure=None):
        with self._ready:
            if failure is None:
                self._idle.append(child)
            else:
                self._alive -= 1
                self._all.remove(child)
                self.notes.append("a page reader process was retired: %s" % failure)
            self._ready.notify()
        if failure is not None:
            child.stop()

    def read(self, body):
        child = self._take()
        if child is not None:
            try:
                done, result = child.exchange(body, self.timeout)
            except ChildFailed as exc:
                self._give_back(child, exc)
            else:
                self._give_back(child)
                if done:
                    with self._ready:
                        self.pages_by_children += 1
                    return result
        with self._ready:
            self.pages_in_thread += 1
        return self.reader(body)

    def close(self):
        """Stop every child (call it once the threads that read through it are done)."""
        with self._ready:
            self._closed = True
        self._go.set()  # a starter still waiting gives up
        if self._starter is not None:
            self._starter.join()
        with self._ready:
            children, self._all, self._idle, self._alive = self._all, [], [], 0
            self._ready.notify_all()
        self.peak_rss_kib = sum(child.peak_rss_kib() for child in children)
        for child in children:  # all at once: they exit in parallel
            child.hang_up()
        for child in children:
            child.reap()
        self.cpu_seconds = self._reaped_cpu() - self._children_cpu

    @staticmethod
    def _reaped_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

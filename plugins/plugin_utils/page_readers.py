# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fleetforge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helper processes that read API answers on other CPU cores (standard library only).

Reading a page of 500 EC2 instances costs about 15-20 ms of CPU even without botocore, under
the GIL that the worker threads share: regions answering at about the same time queue their
pages behind each other, and the whole fetch pays the sum. :class:`PageReaders` runs the
same pure reader function (bytes in, plain data out) in a few child processes of the same
interpreter, started with ``-I -S`` and loading nothing but the standard library and the
reader's own module. A thread hands the raw answer over a pipe and gets the result back as
``marshal`` data (about 1 ms per page to load), and the GIL stays free for the others
meanwhile.

A page goes to the helper with the fewest pages outstanding, even while that helper is still
reading an earlier one, but a helper holds at most two (``depth``): further pages wait in their
threads until a helper answers one, so that the helpers that read faster get more pages and
all of them finish at about the same time. A queued page waits in a file in RAM
(``/dev/shm``, a private directory; the pipe carries only its path) or else in the pipe, and
the helper starts on it the moment its previous answer is written, instead of waiting for the
parent thread to load that answer, hand the helper back and wake the next thread. Answers come
back in the order the pages were handed over; each thread reads its own when the ones before
it are read. A helper's files are removed as it reads them, the directory when the readers
close (and, if the process was killed first, by the next run of this user: the directory's
name holds the process id).

A helper writes the heap memory it will need (``WARM_UP_BYTES``) while the first requests wait
for their answers, instead of taking a page fault for every 4 KiB of its first pages.

Nothing here may change a result. Whatever goes wrong with a child (it cannot start, dies,
answers something malformed or takes longer than ``timeout``) retires that child, and the page
is read in the calling thread by the same function; when the reader itself raises in the
child, the page is read again in the calling thread, so the caller sees exactly the result or
the exception that the in-thread reader gives.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import marshal
import operator
import os
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Heap memory a child takes (and writes) before its first page: enough for the largest pages
# (1,000 instances) and what is read from them; the children are freed when the fetch ends.
WARM_UP_BYTES = 16 << 20

# frame: kind (1 byte) + payload length; kinds: P page and F the path of a spooled page (to the
# child), O result, E the reader raised (the page is read again in the calling thread)
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
        kind, size = HEADER.unpack(header)
        body = source.read(size)
        if len(body) < size:
            return
        if kind == b"F":  # the page is in a spool file: its path came through the pipe
            path = body.decode("utf-8")
            with open(path, "rb") as spooled:
                body = spooled.read()
            os.unlink(path)
        try:
            kind, payload = b"O", marshal.dumps(reader(body))
        except Exception as exc:  # the calling thread reads this page again and sees it itself
            kind = b"E"
            payload = ("%%s: %%s" %% (type(exc).__name__, exc)).encode("utf-8", "replace")
        sink.write(HEADER.pack(kind, len(payload)))
        sink.write(payload)
        sink.flush()


def warm_up(size):
    # Take the heap memory that reading pages needs once, before the first page. glibc gives
    # a block this large fresh pages from mmap, each a page fault when first written (about
    # 1,600 for a page of 500 instances, 2-3 ms of CPU), and unmaps them when it is freed; it
    # then raises its mmap threshold to that size, so the same block again comes from the
    # heap, which keeps it, written, once freed: the pages' bodies and texts come from there.
    # Elsewhere it costs a moment and changes nothing.
    for _ in range(2):
        block = b"\\0" * size
        del block


if __name__ == "__main__":
    gc.disable()  # pages are acyclic; reference counting frees them
    warm_up(%d)  # while the first requests wait for their answers
    namespace = {"__name__": "_fleetforge_page_reader", "__file__": sys.argv[1]}
    with open(sys.argv[1], "rb") as module:
        exec(compile(module.read(), sys.argv[1], "exec"), namespace)
    serve(namespace[sys.argv[2]], sys.stdin.buffer, sys.stdout.buffer)
    os._exit(0)  # every answer is written and flushed: nothing left to tear down
""" % (HEADER.format, WARM_UP_BYTES)

# Pages go to the children through files in RAM (tmpfs), where there is one: a page of
# 1.7 MB does not fit in a pipe, and writing the rest waits for the child to be scheduled and
# drain it, then for the writing thread to get the GIL back. A file is written at once, and a
# child finds the next page whole the moment it has answered the previous one.
SPOOL_PARENTS = ("/dev/shm",)


SPOOL_PREFIX = "fleetforge-pages-"


def _remove_orphans(parent):
    """Remove the spool directories of this user's processes that are gone (killed in the
    middle of a fetch): their names hold the process id."""
    try:
        names = [name for name in os.listdir(parent) if name.startswith(SPOOL_PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(SPOOL_PREFIX):].split("-", 1)[0]
        path = os.path.join(parent, name)
        try:
            if not pid.isdigit() or os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile, or alive and another user's: not ours to remove
            continue


def _spool_dir():
    """A private directory (mode 0700) for the pages, in RAM; None where there is none."""
    for parent in SPOOL_PARENTS:
        if os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK):
            _remove_orphans(parent)
            try:
                return tempfile.mkdtemp(prefix="%s%d-" % (SPOOL_PREFIX, os.getpid()),
                                        dir=parent)
            except OSError:
                continue
    return None


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
        self.outstanding = 0  # pages handed to it and not yet answered (PageReaders' lock)
        self.failure = None  # why it was retired: every thread still queued on it gives up
        self._writing = threading.Lock()  # one page is written at a time, in ticket order
        self._turn = threading.Condition()  # answers are read in the same order
        self._written = 0
        self._answered = 0
        for fd in (self.to_child, self.from_child):
            os.set_blocking(fd, False)
            # not Linux, or a lower limit: the default pipes, only slower
            with contextlib.suppress(AttributeError, OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    def exchange(self, body, timeout, ahead=0, spool=None, answered=None):
        """(True, result) or (False, the reader's error text); raises ChildFailed.

        ``ahead``: pages queued on this child before this one; writing may wait for them.
        ``spool(body)``: the path of a file holding the page (the child reads and removes
        it), or None to send the page itself through the pipe.
        ``answered()``: called once the answer is read from the pipe, before it is loaded.
        """
        path = spool(body) if spool is not None else None
        kind, payload = (b"F", path) if path is not None else (b"P", body)
        with self._writing:
            if self.failure is not None:
                raise ChildFailed(self.failure)
            ticket = self._written
            try:
                deadline = time.monotonic() + timeout * (ahead + 1)
                _write_all(self.to_child, HEADER.pack(kind, len(payload)), deadline)
                _write_all(self.to_child, payload, deadline)  # not joined: no copy of the page
            except ChildFailed as exc:
                self.fail(str(exc))  # a page half written: nothing after it can be trusted
                raise
            self._written += 1
        with self._turn:
            while self._answered != ticket and self.failure is None:
                self._turn.wait()
            if self.failure is not None:
                raise ChildFailed(self.failure)
        try:  # the answers before this one are read: this one is due within the time limit
            deadline = time.monotonic() + timeout
            kind, size = HEADER.unpack(_read_exact(self.from_child, HEADER.size, deadline))
            payload = _read_exact(self.from_child, size, deadline)
        except ChildFailed as exc:
            self.fail(str(exc))
            raise
        with self._turn:
            self._answered += 1
            self._turn.notify_all()
        if answered is not None:
            answered()
        # loaded after the next thread may read its answer
        if kind == b"O":
            try:
                return True, marshal.loads(payload)
            except (EOFError, ValueError, TypeError) as exc:
                raise ChildFailed("malformed answer: %s" % exc) from None
        if kind == b"E":
            return False, payload.decode("utf-8", "replace")
        raise ChildFailed("unknown answer kind %r" % kind)

    def fail(self, reason):
        """Retire it: the threads queued on it give up, and the process is killed so that a
        thread blocked on one of its pipes sees the end of it (reaped by ``stop``)."""
        with self._turn:
            if self.failure is None:
                self.failure = reason
            self._turn.notify_all()
        with contextlib.suppress(OSError):
            self.process.kill()

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
    a page is queued on the child with the fewest pages outstanding, at most ``depth`` on each
    (the calling thread waits for a free place).

    Use as a context manager; ``notes`` lists what went wrong (for a -vvv line),
    ``pages_by_children`` / ``pages_in_thread`` count where the pages were read, and
    ``cpu_seconds`` and ``peak_rss_kib`` are what the children used (once ``close`` has reaped
    them, or when it calls ``reaped``; other children that this process reaps meanwhile count
    in ``cpu_seconds`` too).
    """

    def __init__(self, reader, workers, timeout=30.0, start_after=0, depth=2):
        self.reader = reader
        self.workers = workers
        self.timeout = timeout
        self.depth = max(1, depth)
        self.notes = []
        self.pages_by_children = 0
        self.pages_in_thread = 0
        self.cpu_seconds = 0.0  # of the children, known once they are stopped
        self.peak_rss_kib = 0  # the children's peaks added up, known once they are stopped
        self._children_cpu = self._reaped_cpu()
        self._all = []  # the children pages may be queued on
        self._retired = []  # failed children, reaped by close()
        self._spool_dir = _spool_dir()
        self._spooled = itertools.count()
        self._starting = True  # pages are read in the calling thread until the children are up
        self._closed = False
        self._lock = threading.Lock()
        self._slot = threading.Condition(self._lock)  # a child has room for one more page
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
        with self._lock:
            self._requests_left -= 1
            if self._requests_left == 0:
                self._go.set()

    def _start_when_asked(self):
        self._go.wait()
        self._start_all()

    def _start_all(self):
        while True:
            with self._lock:
                if self._closed or len(self._all) >= self.workers:
                    self._starting = False
                    return
            child = self._start()
            with self._lock:
                if child is None or self._closed:
                    self._starting = False
                    break
                self._all.append(child)
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
        return len(self._all)

    def _choose(self):
        """(the child with the fewest pages outstanding, how many), counted as one more; or
        (None, 0) when none is left, or while they start and every one started is busy (the
        calling thread reads the page then, as before any has started).

        Once they are up, a child holds at most ``depth`` pages (the one it reads and the
        next); a thread with another page waits until one of them answers and gives it to
        that child: the children that read faster get more pages, and all finish together."""
        with self._lock:
            while True:
                if not self._all or self._closed:
                    return None, 0
                child = min(self._all, key=operator.attrgetter("outstanding"))
                if self._starting and child.outstanding:
                    return None, 0
                if child.outstanding < self.depth:
                    child.outstanding += 1
                    return child, child.outstanding - 1
                self._slot.wait()

    def _release(self, child):
        """The child no longer holds this page: another may be given to it."""
        with self._lock:
            child.outstanding -= 1
            self._slot.notify()

    def _retire(self, child, failure):
        child.fail(str(failure))
        with self._lock:
            if child in self._all:
                self._all.remove(child)
                self._retired.append(child)
                self.notes.append("a page reader process was retired: %s" % failure)
            self._slot.notify_all()  # the threads waiting for it choose among the others

    def read(self, body):
        child, ahead = self._choose()
        if child is not None:
            released = []

            def release():
                if not released:
                    released.append(True)
                    self._release(child)
            try:
                done, result = child.exchange(body, self.timeout, ahead, spool=self._spool,
                                              answered=release)
            except ChildFailed as exc:
                self._retire(child, exc)
            else:
                if done:
                    with self._lock:
                        self.pages_by_children += 1
                    return result
            finally:
                release()
        with self._lock:
            self.pages_in_thread += 1
        return self.reader(body)

    def _spool(self, body):
        """The page written to a file of the spool directory (its path, as bytes), or None when
        there is none or that fails (the page then goes through the pipe)."""
        if self._spool_dir is None:
            return None
        path = os.path.join(self._spool_dir, "page-%d" % next(self._spooled))
        try:
            with open(path, "xb") as spooled:
                spooled.write(body)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        return path.encode("utf-8")

    def close(self, wait=True, reaped=None):
        """Stop every child (call it once the threads that read through it are done).

        The children are told to exit and the spool directory is removed at once. Reaping them
        waits until they have exited (each frees its heap first, a few ms): here, or with
        ``wait=False`` in a background thread, so that the caller goes on meanwhile;
        ``reaped(self)`` is called once they are reaped and ``cpu_seconds`` is known.
        """
        with self._lock:
            self._closed = True
            self._slot.notify_all()
        self._go.set()  # a starter still waiting gives up
        if self._starter is not None:
            self._starter.join()
        with self._lock:
            children = self._all + self._retired
            self._all, self._retired = [], []
        self.peak_rss_kib = sum(child.peak_rss_kib() for child in children)
        for child in children:  # all at once: they exit in parallel
            child.hang_up()
        if self._spool_dir is not None:  # pages a retired child did not take
            shutil.rmtree(self._spool_dir, ignore_errors=True)
        if wait:
            self._reap(children, reaped)
        else:
            threading.Thread(target=self._reap, args=(children, reaped),
                             name="fleetforge-page-reader-reaper").start()

    def _reap(self, children, reaped):
        for child in children:
            child.reap()
        self.cpu_seconds = self._reaped_cpu() - self._children_cpu
        if reaped is not None:
            reaped(self)

    @staticmethod
    def _reaped_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

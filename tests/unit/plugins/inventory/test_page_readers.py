"""Helper processes read DescribeInstances pages exactly as the calling thread would."""
from __future__ import annotations

import gc
import importlib.util
import io
import marshal
import os
import platform
import subprocess
import sys
import threading

import aws_lab  # tests/unit/plugins/inventory, put on sys.path by conftest
import pytest
from ansible_collections.fleetforge.fleet.plugins.plugin_utils import page_readers
from ansible_collections.fleetforge.fleet.plugins.plugin_utils.ec2_xml import (
    NotDescribeInstances,
    parse_describe_instances,
)
from conftest import BIG_REGION

boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def pages(moto, big_region):
    """The raw XML bodies of moto's DescribeInstances pages for a region of 1,010 instances."""
    bodies = aws_lab.raw_describe_pages(boto3, moto.url, BIG_REGION)
    assert len(bodies) >= 2
    return bodies


def _reader_module(tmp_path, name, source):
    """A reader in a module of its own (a child loads the reader's module from its file)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_children_read_every_page_like_the_thread(pages):
    with page_readers.PageReaders(parse_describe_instances, 2) as readers:
        assert readers.children == 2
        for body in pages:
            assert readers.read(body) == parse_describe_instances(body)
    assert readers.pages_by_children == len(pages) and readers.pages_in_thread == 0
    assert readers.notes == []


def test_threads_share_the_children(pages):
    bodies = (pages * 4)[:8]
    results = [None] * len(bodies)
    with page_readers.PageReaders(parse_describe_instances, 2) as readers:
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, readers.read(bodies[i])))
                   for i in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert results == [parse_describe_instances(body) for body in bodies]
    assert readers.pages_by_children == len(bodies)


def test_children_start_after_the_requests_and_pages_meanwhile_are_read_here(pages):
    with page_readers.PageReaders(parse_describe_instances, 2, start_after=3) as readers:
        readers.request_sent()
        readers.request_sent()
        assert readers.read(pages[0]) == parse_describe_instances(pages[0])
        assert readers.children == 0 and readers.pages_in_thread == 1
        readers.request_sent()  # the third: the background thread starts them
        readers._starter.join(30)
        assert readers.children == 2
        assert readers.read(pages[1]) == parse_describe_instances(pages[1])
        readers.request_sent()  # later requests change nothing
    assert readers.pages_by_children == 1 and readers.pages_in_thread == 1
    assert readers.notes == []


def test_closing_before_the_start_starts_nothing(pages):
    readers = page_readers.PageReaders(parse_describe_instances, 2, start_after=8)
    readers.close()
    assert not readers._starter.is_alive() and readers.children == 0
    assert readers.read(pages[0]) == parse_describe_instances(pages[0])


def test_close_stops_every_child(pages):
    readers = page_readers.PageReaders(parse_describe_instances, 3)
    processes = [child.process for child in readers._all]
    readers.read(pages[0])
    readers.close()
    assert len(processes) == 3 and all(process.returncode == 0 for process in processes)
    assert readers.children == 0
    # what they used, for the -vvv line: each is a Python process of at least a few MiB
    assert readers.cpu_seconds > 0 and readers.peak_rss_kib > 3 * 2048
    readers.read(pages[0])  # after close: the calling thread reads
    assert readers.pages_in_thread == 1


def test_close_without_waiting_reaps_in_the_background(monkeypatch, pages):
    """close(wait=False) tells the children to exit and returns at once; they are reaped in
    another thread, which then reports what they used."""
    readers = page_readers.PageReaders(parse_describe_instances, 2)
    processes = [child.process for child in readers._all]
    readers.read(pages[0])
    release = threading.Event()
    reap = page_readers._Child.reap

    def slow_reap(child):  # a child slow to exit: close() must not wait for it
        release.wait(30)
        reap(child)

    monkeypatch.setattr(page_readers._Child, "reap", slow_reap)
    reported = []
    done = threading.Event()
    readers.close(wait=False, reaped=lambda r: (reported.append(r.cpu_seconds), done.set()))
    assert not done.is_set() and readers.children == 0
    assert not os.path.exists(readers._spool_dir or "/nonexistent")  # removed at once
    readers.read(pages[0])  # closed: the calling thread reads
    assert readers.pages_in_thread == 1
    release.set()
    assert done.wait(30)
    assert all(process.returncode == 0 for process in processes)
    assert reported[0] > 0 and readers.peak_rss_kib > 2 * 2048


def test_the_readers_error_is_the_callers_error():
    with page_readers.PageReaders(parse_describe_instances, 1) as readers:
        with pytest.raises(NotDescribeInstances):
            readers.read(b"<Response><Errors/></Response>")
        with pytest.raises(NotDescribeInstances):
            readers.read(b"not xml at all")
        assert readers.children == 1  # a reader error is not the child's fault
    assert readers.pages_by_children == 0 and readers.pages_in_thread == 2


def test_a_dead_child_is_retired_and_the_page_still_read(pages):
    with page_readers.PageReaders(parse_describe_instances, 2) as readers:
        victim = readers._all[0]  # the next one chosen: none has a page yet
        victim.process.kill()
        victim.process.wait()
        assert readers.read(pages[0]) == parse_describe_instances(pages[0])
        assert readers.children == 1 and readers.pages_in_thread == 1
        assert len(readers.notes) == 1 and "retired" in readers.notes[0]
        assert readers.read(pages[1]) == parse_describe_instances(pages[1])
        assert readers.pages_by_children == 1


def _one_child_readers(tmp_path, name, body_in_child):
    """PageReaders with one child whose reader runs ``body_in_child`` (a line of code) in the
    child only, then returns {'page': the page}; in the calling thread it just returns that."""
    module = _reader_module(tmp_path, name,
                            "import os, time\n"
                            "def read(body):\n"
                            "    if 'FLEET_IN_CHILD' in os.environ:\n"
                            f"        {body_in_child}\n"
                            "    return {'page': body.decode()}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEET_IN_CHILD", "1")
        return page_readers.PageReaders(module.read, 1)


def _read_in_threads(readers, count):
    """{n: readers.read(b"page-n")}, the pages read by ``count`` threads at once."""
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(
        n, readers.read(f"page-{n}".encode()))) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_pages_queue_on_a_busy_child_and_come_back_in_order(tmp_path):
    """Six threads, one child: pages are handed over while the child still reads earlier
    ones, and each thread gets the answer to its own page."""
    readers = _one_child_readers(tmp_path, "fleet_slow_echo", "time.sleep(0.05)")
    queued = []
    original = readers._choose

    def choose():
        child, ahead = original()
        queued.append(ahead)
        return child, ahead

    readers._choose = choose
    with readers:
        results = _read_in_threads(readers, 6)
    assert results == {n: {"page": f"page-{n}"} for n in range(6)}
    assert readers.pages_by_children == 6 and readers.pages_in_thread == 0
    assert max(queued) >= 1  # pages were queued behind others, not read in the threads
    assert readers.notes == []


def test_a_child_that_dies_with_pages_queued_leaves_each_page_to_its_thread(tmp_path):
    readers = _one_child_readers(tmp_path, "fleet_dying_reader", "time.sleep(0.2); os._exit(3)")
    with readers:
        results = _read_in_threads(readers, 4)
        assert readers.children == 0
    assert results == {n: {"page": f"page-{n}"} for n in range(4)}
    assert readers.pages_in_thread == 4 and readers.pages_by_children == 0
    assert len(readers.notes) == 1 and "retired" in readers.notes[0]
    assert readers._spool_dir is None or not os.path.exists(readers._spool_dir)


@pytest.mark.parametrize("spool", [True, False])
def test_pages_go_through_a_spool_file_or_the_pipe(monkeypatch, tmp_path, pages, spool):
    """With a RAM directory the pages are spooled files (removed by the child, the directory
    by close); without one, or when a file cannot be written, the pipe carries them."""
    if spool:
        monkeypatch.setattr(page_readers, "SPOOL_PARENTS", (str(tmp_path),))
    else:
        monkeypatch.setattr(page_readers, "SPOOL_PARENTS", (str(tmp_path / "missing"),))
    with page_readers.PageReaders(parse_describe_instances, 1) as readers:
        for body in pages[:2]:
            assert readers.read(body) == parse_describe_instances(body)
        if spool:
            assert readers._spool_dir.startswith(str(tmp_path))
            assert os.listdir(readers._spool_dir) == []  # each page removed once read
            assert (os.stat(readers._spool_dir).st_mode & 0o777) == 0o700
            os.chmod(readers._spool_dir, 0o500)  # a page that cannot be spooled: the pipe
            try:
                assert readers.read(pages[0]) == parse_describe_instances(pages[0])
            finally:
                os.chmod(readers._spool_dir, 0o700)
        else:
            assert readers._spool_dir is None
    assert readers.pages_by_children == (3 if spool else 2) and readers.notes == []
    if spool:
        assert not os.listdir(tmp_path)  # close removed the spool directory


def test_spool_directories_of_processes_that_are_gone_are_removed(monkeypatch, tmp_path):
    """A fetch killed midway leaves its spool directory; the next one removes it, and leaves
    those of live processes (this one) and names it does not own alone."""
    monkeypatch.setattr(page_readers, "SPOOL_PARENTS", (str(tmp_path),))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f"{page_readers.SPOOL_PREFIX}{dead.pid}-x"
    alive = tmp_path / f"{page_readers.SPOOL_PREFIX}{os.getpid()}-y"
    other = tmp_path / "something-else"
    for directory in (orphan, alive, other):
        directory.mkdir()
        (directory / "page-0").write_bytes(b"page")
    with page_readers.PageReaders(parse_describe_instances, 1) as readers:
        assert os.path.basename(readers._spool_dir).startswith(
            f"{page_readers.SPOOL_PREFIX}{os.getpid()}-")
    assert not orphan.exists() and alive.exists() and other.exists()


def test_a_slow_child_is_retired_after_the_timeout(tmp_path):
    module = _reader_module(tmp_path, "fleet_slow_reader",
                            "import os, time\n"
                            "def read(body):\n"
                            "    if os.environ.get('FLEET_IN_CHILD') is None:\n"
                            "        return {'read': 'in the thread'}\n"
                            "    time.sleep(30)\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEET_IN_CHILD", "1")
        readers = page_readers.PageReaders(module.read, 1, timeout=1.0)
    with readers:
        assert readers.read(b"page") == {"read": "in the thread"}
        assert readers.children == 0 and "time limit" in readers.notes[0]
    assert readers.pages_in_thread == 1


def test_a_child_that_cannot_start_leaves_the_thread_to_read(monkeypatch, pages):
    monkeypatch.setattr(page_readers.sys, "executable", "")
    with page_readers.PageReaders(parse_describe_instances, 2) as readers:
        assert readers.children == 0 and readers.notes
        assert readers.read(pages[0]) == parse_describe_instances(pages[0])
    assert readers.pages_in_thread == 1


def test_the_child_program_answers_frames():
    """The child's loop itself, in this process on in-memory streams: a page, a reader error,
    then the end of its input."""
    namespace = {"__name__": "not_main"}
    exec(page_readers.CHILD_CODE, namespace)
    body = b"<x/>"
    frames = page_readers.HEADER.pack(b"P", len(body)) + body
    frames += page_readers.HEADER.pack(b"P", 3) + b"bad"
    out = io.BytesIO()

    def reader(data):
        if data == b"bad":
            raise ValueError("cannot read")
        return {"length": len(data)}

    namespace["serve"](reader, io.BytesIO(frames), out)
    assert gc.isenabled()  # the child's settings stay in the child's __main__
    answers = out.getvalue()
    kind, size = page_readers.HEADER.unpack_from(answers)
    assert kind == b"O"
    assert marshal.loads(answers[page_readers.HEADER.size:page_readers.HEADER.size + size]) == \
        {"length": 4}
    rest = answers[page_readers.HEADER.size + size:]
    kind, size = page_readers.HEADER.unpack_from(rest)
    assert kind == b"E" and rest[page_readers.HEADER.size:] == b"ValueError: cannot read"


def test_a_faster_child_gets_more_pages_and_none_holds_more_than_depth(tmp_path):
    """Two children, the first to read a page slow (0.4 s a page), the other fast: eight
    threads hand their pages over at once, and a child holds at most ``depth`` pages (the one
    it reads and the next), so the pages left wait for a free place and most go to the fast
    one instead of being shared out evenly when they arrive."""
    module = _reader_module(tmp_path, "fleet_uneven_reader",
                            "import os, time\n"
                            "SLOW = None\n"
                            "def read(body):\n"
                            "    global SLOW\n"
                            "    if 'FLEET_SLOW_MARK' not in os.environ:\n"
                            "        return {'page': body.decode(), 'by': 0}\n"
                            "    if SLOW is None:\n"
                            "        try:\n"
                            "            os.close(os.open(os.environ['FLEET_SLOW_MARK'],\n"
                            "                             os.O_CREAT | os.O_EXCL))\n"
                            "            SLOW = True\n"
                            "        except FileExistsError:\n"
                            "            SLOW = False\n"
                            "    time.sleep(0.4 if SLOW else 0.02)\n"
                            "    return {'page': body.decode(), 'by': os.getpid()}\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEET_SLOW_MARK", str(tmp_path / "slow"))
        readers = page_readers.PageReaders(module.read, 2, depth=2)
    held = []
    original = readers._choose

    def choose():
        child, ahead = original()
        held.append(ahead + 1)
        return child, ahead

    readers._choose = choose
    with readers:
        pids = {child.process.pid for child in readers._all}
        results = _read_in_threads(readers, 8)
    assert {n: result["page"] for n, result in results.items()} == \
        {n: f"page-{n}" for n in range(8)}
    by_child = [sum(1 for result in results.values() if result["by"] == pid) for pid in pids]
    assert sum(by_child) == 8 and readers.pages_in_thread == 0
    assert max(held) == 2
    assert sorted(by_child)[0] <= 2 and sorted(by_child)[1] >= 6, by_child


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc's malloc")
def test_the_childs_warm_up_spares_the_first_pages_their_page_faults():
    """A child writes its heap memory before the first page: reading a page of 2 MB then
    takes almost no page faults, against one per 4 KiB without the warm-up."""
    program = ("import resource, sys\n"
               "namespace = {'__name__': 'not_main'}\n"
               "exec(sys.stdin.read(), namespace)\n"
               "if sys.argv[1] == 'warm':\n"
               f"    namespace['warm_up']({page_readers.WARM_UP_BYTES})\n"
               "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
               "body = b'x' * (2 << 20)\n"
               "text = body.decode()\n"
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {}
    for mode in ("warm", "cold"):
        done = subprocess.run([sys.executable, "-I", "-S", "-c", program, mode], check=True,
                              input=page_readers.CHILD_CODE, capture_output=True, text=True)
        faults[mode] = int(done.stdout)
    assert faults["cold"] >= 800, faults  # 4 MiB written: 1,024 pages of 4 KiB
    assert faults["warm"] < 100, faults

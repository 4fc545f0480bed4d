"""Issue #15: every core of one machine for build_npdd's per-image work, results in input order."""

import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from beam_pipelines import local_workers
from beam_pipelines.progress import Progress


def _square_and_pid(x):
    return x * x, os.getpid()


def _square_and_pid_together(x, meeting):
    """Each process leaves its pid in ``meeting`` and waits (up to a minute) until a second process has: so the
    pool must run two processes at once, however busy the machine is, for the calls to go on."""
    open(os.path.join(meeting, str(os.getpid())), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(meeting)) < 2:
        if time.time() > deadline:  # no second process came: stop waiting (the test then fails on the pid count)
            open(os.path.join(meeting, "nobody-came"), "w").close()
        time.sleep(0.01)
    return x * x, os.getpid()


def _die(x):
    if x == 3:
        os._exit(7)  # a decoder that crashes the process (a segfault in C code looks the same)
    return x


def test_results_come_back_in_input_order_from_several_processes(tmp_path):
    pool = local_workers.OrderedPool(_square_and_pid_together, workers=2, chunk=3, window=2)
    try:
        done = []
        for i in range(40):
            done += list(pool.put(i, (i, str(tmp_path))))
            assert len(done) <= i + 1
        done += list(pool.drain())
    finally:
        pool.close()
    assert [key for key, _ in done] == list(range(40))
    assert [result[0] for _, result in done] == [i * i for i in range(40)]
    assert len({result[1] for _, result in done} - {os.getpid()}) == 2  # two workers, neither is this process


def test_a_crashed_worker_fails_the_work_instead_of_hanging():
    pool = local_workers.OrderedPool(_die, workers=2, chunk=1)
    try:
        with pytest.raises(BrokenProcessPool):
            for i in range(8):
                list(pool.put(i, (i,)))
            list(pool.drain())
    finally:
        pool.close()


def test_every_core_only_where_beam_runs_in_this_process():
    cores = local_workers.available_cores()
    assert local_workers.worker_count(0, "DirectRunner") == cores
    assert local_workers.worker_count(3, "DirectRunner") == 3
    assert local_workers.worker_count(0, "DataflowRunner") == 1  # Dataflow spreads the work itself
    assert local_workers.worker_count(0, "DirectRunner", ["--direct_num_workers=2"]) == 1  # Beam's own processes
    with pytest.raises(ValueError):
        local_workers.worker_count(-1, "DirectRunner")


def test_a_script_without_a_main_guard_can_use_the_pool(tmp_path):
    # workers must not re-run the caller's __main__ (spawn would, and fail or recurse)
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        from beam_pipelines.local_workers import OrderedPool
        from tests.beam_pipelines.test_local_workers import _square_and_pid
        pool = OrderedPool(_square_and_pid, workers=2, chunk=2)
        out = [r[0] for _, r in list(pool.put(0, (5,))) + list(pool.put(1, (6,))) + list(pool.drain())]
        pool.close()
        print("RESULT", out)
    """))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("RESULT") == 1 and "RESULT [25, 36]" in done.stdout


def test_progress_line_tells_rate_and_time_left():
    now = [0.0]
    progress = Progress("build_npdd: normalized", expected=100, every=5.0, clock=lambda: now[0])
    for _ in range(19):
        now[0] += 0.25  # 4 images/s
        progress.step()
    assert progress.lines == []  # 4.75 s: too early for a line
    now[0] += 0.25
    progress.step()
    assert progress.lines == ["build_npdd: normalized 20 of 100 images, 4 images/s, about 20 s left"]
    now[0] += 0.5
    progress.step(2)
    progress.finish()
    assert progress.lines[-1] == "build_npdd: normalized 22 of 100 images, 4 images/s, about 20 s left"


def test_results_known_at_once_keep_their_place_in_the_order():
    pool = local_workers.OrderedPool(_square_and_pid, workers=2, chunk=4)
    try:
        done = []
        for i in range(10):
            ready = pool.put_done(i, ("early", i)) if i % 3 == 0 else pool.put(i, (i,))
            done += list(ready)
        done += list(pool.drain())
    finally:
        pool.close()
    assert [key for key, _ in done] == list(range(10))
    assert [result[0] for _, result in done] == ["early" if i % 3 == 0 else i * i for i in range(10)]


def test_large_items_are_bounded_by_bytes_in_flight():
    pool = local_workers.OrderedPool(_square_and_pid, workers=2, chunk=8, window=100, max_bytes=1000)
    try:
        done, most = [], 0
        for i in range(30):
            done += list(pool.put(i, (i,), size=400))  # three items already exceed the bound
            most = max(most, pool.in_flight_bytes())
        done += list(pool.drain())
    finally:
        pool.close()
    assert [key for key, _ in done] == list(range(30))
    assert most <= 1000 + 250 + 400  # the bound, one chunk (1000 / 2 workers / 2) and one item; not 100 chunks

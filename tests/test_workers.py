import os
import subprocess
import sys

import psutil
import pytest

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.system.workers import cpu_count, process_map


def test_every_task_comes_back():
    results = process_map(abs, [-1, -2, 3, -4], 2, preload="galaxyzoo.system.workers", what="test")
    assert sorted(results) == [1, 2, 3, 4]
    ordered = process_map(abs, [-5, 1, -3, 2], 2, preload="galaxyzoo.system.workers", what="test", ordered=True)
    assert list(ordered) == [5, 1, 3, 2]
    bounded = process_map(abs, [-5, 1, -3, 2, -7], 2, preload="galaxyzoo.system.workers", what="test", ordered=True,
                          ahead=1)
    assert list(bounded) == [5, 1, 3, 2, 7]


def test_workers_run_at_the_niceness_asked():
    niced = process_map(os.nice, [0, 0], 2, preload="galaxyzoo.system.workers", what="test", niceness=5)
    assert list(niced) == [min(os.nice(0) + 5, 19)] * 2  # os.nice(0) reads a process's niceness


@pytest.mark.timeout(120)  # the failure this guards against is a hang
def test_a_dead_worker_is_one_clear_error_not_a_hang():
    with pytest.raises(GalaxyZooError, match="test worker process died"):
        list(process_map(os._exit, [3, 3], 2, preload="galaxyzoo.system.workers", what="test"))


def test_cpu_count_respects_the_affinity_mask():
    assert cpu_count() == len(os.sched_getaffinity(0)) >= 1


def test_a_worker_whose_parent_pid_was_recycled_ends_at_once():
    # The pid is alive but its start time is not the parent's: the parent is gone and its pid reused.
    code = "import os; from galaxyzoo.system.workers import die_with; die_with(os.getppid(), 0.0); print('still here')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (1, "")


def test_a_worker_ends_when_its_parent_ends():
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    code = ("import sys, time; from galaxyzoo.system.workers import die_with\n"
            f"die_with({parent.pid}, {psutil.Process(parent.pid).create_time()!r}); print('watching', flush=True)\n"
            "time.sleep(3600)")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "watching\n"
        parent.kill()
        parent.wait()
        assert worker.wait(timeout=120) == 1
    finally:
        parent.kill()
        worker.kill()

import os

import pytest

from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.workers import cpu_count, process_map


def test_every_task_comes_back():
    results = process_map(abs, [-1, -2, 3, -4], 2, preload="galaxyzoo.workers", what="test")
    assert sorted(results) == [1, 2, 3, 4]
    ordered = process_map(abs, [-5, 1, -3, 2], 2, preload="galaxyzoo.workers", what="test", ordered=True)
    assert list(ordered) == [5, 1, 3, 2]


@pytest.mark.timeout(120)  # the failure this guards against is a hang
def test_a_dead_worker_is_one_clear_error_not_a_hang():
    with pytest.raises(GalaxyZooError, match="test worker process died"):
        list(process_map(os._exit, [3, 3], 2, preload="galaxyzoo.workers", what="test"))


def test_cpu_count_respects_the_affinity_mask():
    assert cpu_count() == len(os.sched_getaffinity(0)) >= 1

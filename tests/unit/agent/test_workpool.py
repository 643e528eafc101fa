"""JobGroup: one capture's share of the agent's worker pool."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ragbackup.agent.workpool import JobGroup


def test_close_cancels_own_queued_jobs_and_leaves_other_groups_alone():
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        a, b = JobGroup(pool), JobGroup(pool)
        running = a.submit(gate.wait, 10)  # occupies the only worker
        queued_a = a.submit(lambda: "a")
        queued_b = b.submit(lambda: "b")
        closer = threading.Thread(target=a.close)
        closer.start()
        deadline = time.monotonic() + 5
        while not queued_a.cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued_a.cancelled()
        assert closer.is_alive(), "close must wait for the job that is running"
        gate.set()
        closer.join(5)
        assert not closer.is_alive()
        assert running.result() is True
        assert queued_b.result(5) == "b"
        b.close()


def test_own_pool_runs_jobs_and_shuts_down():
    group = JobGroup(workers=2, name="t")
    assert [group.submit(pow, 2, n).result() for n in range(4)] == [1, 2, 4, 8]
    group.close()
    try:
        group.submit(pow, 2, 2)
    except RuntimeError:
        pass
    else:
        raise AssertionError("a closed group with its own pool must refuse work")

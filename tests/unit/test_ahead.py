"""run_ahead: a producer on its own thread gives the same items, its errors, and stops when closed."""
import threading
import time

import pytest

from ragbackup import errors
from ragbackup.ahead import run_ahead


def test_same_items_in_order():
    assert list(run_ahead(lambda: iter(range(1000)), 2, "t")) == list(range(1000))


def test_producer_runs_at_most_depth_items_ahead():
    made: list[int] = []

    def make():
        for i in range(10):
            made.append(i)
            yield i

    gen = run_ahead(make, 2, "t")
    assert next(gen) == 0
    time.sleep(0.3)  # let the producer fill the queue and block
    # one taken, 2 queued, 1 made and waiting to be put: never all 10
    assert len(made) <= 4
    assert list(gen) == list(range(1, 10))


def test_errors_reach_the_consumer_after_the_items_before_them():
    def make():
        yield 1
        yield 2
        raise errors.IntegrityError("chunk 3 is corrupt")

    got = []
    with pytest.raises(errors.IntegrityError, match="chunk 3 is corrupt"):
        for item in run_ahead(make, 4, "t"):
            got.append(item)
    assert got == [1, 2]


def test_error_making_the_iterator_reaches_the_consumer():
    def make():
        raise errors.NotFound("capture path /nowhere does not exist")

    with pytest.raises(errors.NotFound, match="/nowhere"):
        list(run_ahead(make, 1, "t"))


def test_closing_the_consumer_closes_the_producer_on_its_thread():
    closed_on: list[str] = []

    def make():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed_on.append(threading.current_thread().name)

    before = threading.active_count()
    gen = run_ahead(make, 1, "producer")
    assert next(gen) == 0
    gen.close()
    assert closed_on == ["producer"]
    assert threading.active_count() == before

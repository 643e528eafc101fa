"""Retrying: transient storage failures are retried with backoff, others pass at once.

In: a scripted fake store (for the wrapper's own logic) and S3Storage pointed at dead
loopback endpoints. Out: the number of attempts, the waits, and bounded failure times.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fixtures.procs import free_port
from ragbackup import errors
from ragbackup.secret import Secret
from ragbackup.storage import ObjectInfo, Retrying, S3Settings, S3Storage, Storage, open_storage


class FlakyStore:
    """A fake inner store: each call first raises the queued errors, then succeeds."""

    def __init__(self, failures: list[Exception] | None = None):
        self.failures = list(failures or [])
        self.calls = 0
        self.objects: dict[str, bytes] = {"k": b"value", "d/1": b"1", "d/2": b"22"}

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def describe(self) -> str:
        return "flaky"

    def put(self, key: str, data: bytes) -> None:
        self._maybe_fail()
        self.objects[key] = data

    def put_file(self, key: str, path: str) -> None:
        self._maybe_fail()

    def get(self, key: str) -> bytes:
        self._maybe_fail()
        if key not in self.objects:
            raise errors.NotFound(key)
        return self.objects[key]

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.get(key)[offset:offset + length]

    def get_to_file(self, key: str, path: str) -> None:
        self._maybe_fail()

    def size(self, key: str) -> int:
        return len(self.get(key))

    def exists(self, key: str) -> bool:
        self._maybe_fail()
        return key in self.objects

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self._maybe_fail()
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(data))
                if self.failures and key == "d/1":
                    raise self.failures.pop(0)


def unavailable(n: int) -> list[Exception]:
    return [errors.StorageUnavailable(f"blip {i}") for i in range(n)]


def test_is_a_storage() -> None:
    assert isinstance(Retrying(FlakyStore()), Storage)


def test_retries_storage_unavailable_with_growing_capped_backoff() -> None:
    sleeps: list[float] = []
    inner = FlakyStore(unavailable(3))
    store = Retrying(inner, attempts=4, base_delay=1.0, max_delay=3.0, sleep=sleeps.append)
    assert store.get("k") == b"value"
    assert inner.calls == 4
    assert len(sleeps) == 3
    for wait, ceiling in zip(sleeps, [1.0, 2.0, 3.0]):
        assert ceiling / 2 <= wait <= ceiling


def test_gives_up_after_the_last_attempt() -> None:
    sleeps: list[float] = []
    inner = FlakyStore(unavailable(10))
    with pytest.raises(errors.StorageUnavailable, match="blip 2"):
        Retrying(inner, attempts=3, sleep=sleeps.append).put("k", b"x")
    assert inner.calls == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("error", [errors.NotFound("k"), errors.ConfigError("bad"), errors.IntegrityError("x")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    sleeps: list[float] = []
    inner = FlakyStore([error])
    with pytest.raises(type(error)):
        Retrying(inner, sleep=sleeps.append).get("k")
    assert inner.calls == 1
    assert sleeps == []


def test_not_found_passes_through() -> None:
    inner = FlakyStore()
    with pytest.raises(errors.NotFound):
        Retrying(inner, sleep=lambda s: None).get("missing")
    assert inner.calls == 1


def test_list_retries_until_the_first_object() -> None:
    inner = FlakyStore(unavailable(2))
    store = Retrying(inner, sleep=lambda s: None)
    assert [o.key for o in store.list("d/")] == ["d/1", "d/2"]
    assert inner.calls == 3


def test_list_failure_after_the_first_object_propagates() -> None:
    inner = FlakyStore()
    store = Retrying(inner, sleep=lambda s: None)
    listing = store.list("d/")
    assert next(listing).key == "d/1"
    inner.failures = unavailable(1)
    with pytest.raises(errors.StorageUnavailable):
        next(listing)


def test_empty_listing() -> None:
    assert list(Retrying(FlakyStore()).list("nothing/")) == []


# -- S3 against dead loopback endpoints (no server needed) --------------------


def dead_settings(port: int) -> S3Settings:
    return S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}", bucket="dead-bucket",
        access_key_id=Secret("AKIDEAD"), secret_access_key=Secret("dead-secret-value"),
        connect_timeout=0.5, read_timeout=0.5, max_attempts=2,
    )


def test_s3_closed_port_fails_fast_with_storage_unavailable() -> None:
    port = free_port()  # nothing listens there
    store = open_storage(dead_settings(port))
    assert isinstance(store, Retrying)
    start = time.monotonic()
    with pytest.raises(errors.StorageUnavailable) as caught:
        store.get("config")
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"took {elapsed:.1f}s"
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "get" in message
    assert "dead-secret-value" not in message


def test_s3_silent_server_times_out_instead_of_hanging() -> None:
    """A socket that accepts connections but never answers: the read timeout must fire."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        store = S3Storage(dead_settings(port))
        start = time.monotonic()
        with pytest.raises(errors.StorageUnavailable, match="put"):
            store.put("config", b"x")
        with pytest.raises(errors.StorageUnavailable, match="list"):
            list(store.list(""))
        elapsed = time.monotonic() - start
    assert elapsed < 15, f"took {elapsed:.1f}s"


class FakeClock:
    """Monotonic seconds that advance only by the waits Retrying sleeps and the calls' own cost."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_no_retry_starts_past_the_deadline() -> None:
    clock = FakeClock()
    store = FlakyStore(unavailable(100))
    real_get = store.get

    def slow_get(key: str) -> bytes:
        clock.now += 3.0  # each try costs 3 s (a read timeout)
        return real_get(key)

    store.get = slow_get
    wrapped = Retrying(store, attempts=50, base_delay=0.2, max_delay=1.0, sleep=clock.sleep, deadline=10.0,
                       clock=clock)
    with pytest.raises(errors.StorageUnavailable):
        wrapped.get("k")
    assert clock.now <= 10.0 + 3.0, f"the call ran {clock.now:.1f}s past a 10 s deadline by more than one try"
    assert 2 <= store.calls < 50


def test_a_deadline_never_cuts_a_success_short() -> None:
    clock = FakeClock()
    wrapped = Retrying(FlakyStore(unavailable(2)), attempts=4, sleep=clock.sleep, deadline=30.0, clock=clock)
    assert wrapped.get("k") == b"value"
    assert len(clock.sleeps) == 2


def test_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Retrying(FlakyStore(), deadline=0)


def test_open_storage_gives_s3_its_deadline() -> None:
    store = open_storage(S3Settings(endpoint_url="http://127.0.0.1:1", bucket="b", deadline=7.5))
    assert "deadline=7.5" in repr(store)

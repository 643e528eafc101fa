"""systemd's notify protocol: where datagrams go, and a watchdog ping only when the liveness probe answers."""
import socket
import threading
from concurrent import futures

from ragbackup.notify import DEFAULT_INTERVAL, Notifier, Watchdog


def _bound(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "n.sock"))
    s.settimeout(5)
    return s


def test_sends_ready_status_and_stopping(tmp_path):
    s = _bound(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock")})
    n.ready("serving on x")
    n.status("running backup job 3 (timer)")
    n.stopping()
    assert [s.recv(100) for _ in range(3)] == [b"READY=1\nSTATUS=serving on x", b"STATUS=running backup job 3 (timer)",
                                               b"STOPPING=1\nSTATUS=stopping"]


def test_abstract_socket_and_watchdog_settings():
    n = Notifier({"NOTIFY_SOCKET": "@sd-notify-x", "WATCHDOG_USEC": "30000000"})
    assert n.address == "\0sd-notify-x" and n.watchdog_s == 30.0
    assert Watchdog(n, None, lambda: None).interval == 10.0
    other = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_s == 0.0  # meant for another process
    outside = Notifier({})
    assert outside.send("READY=1") is False and Watchdog(outside, None, lambda: None).interval == DEFAULT_INTERVAL


def test_a_send_error_is_logged_once_and_never_raised(tmp_path, caplog):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.send("WATCHDOG=1") is False and n.send("WATCHDOG=1") is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_alive_only_when_the_probe_answers_on_the_pool():
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "300000"})
    hang = threading.Event()
    with futures.ThreadPoolExecutor(1) as pool:
        assert Watchdog(n, pool, lambda: 1).alive() is True
        assert Watchdog(n, pool, lambda: 1 / 0).alive() is False  # a failing probe earns no ping
        blocked = Watchdog(n, pool, hang.wait)
        assert blocked.alive() is False  # a hung probe (a deadlocked runner) earns no ping
        assert Watchdog(n, pool, lambda: 1).alive() is False  # nor does a pool whose only thread is stuck
        hang.set()
    pool.shutdown()
    assert Watchdog(n, pool, lambda: 1).alive() is False  # a stopped pool: stopping


def test_run_pings_while_alive_and_stops(tmp_path):
    s = _bound(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock"), "WATCHDOG_USEC": "150000"})
    stop = threading.Event()
    with futures.ThreadPoolExecutor(1) as pool:
        t = threading.Thread(target=Watchdog(n, pool, lambda: stop.is_set() or True).run, args=(stop,))
        t.start()
        try:
            assert s.recv(100) == b"WATCHDOG=1"
        finally:
            stop.set()
            t.join(5)
    assert not t.is_alive()


def test_a_full_queue_drops_messages_instead_of_blocking(tmp_path):
    s = _bound(tmp_path)  # never read: systemd busy
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "n.sock")})
    sent = [n.send("WATCHDOG=1") for _ in range(2000)]  # would block forever with a blocking sendto
    assert sent[0] is True and sent[-1] is False
    assert s.recv(100) == b"WATCHDOG=1"
